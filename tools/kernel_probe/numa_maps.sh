#!/bin/sh
# Builds numa_maps.c into /tmp, runs its knob-free cases, then its 64 kB mTHP case with
# hugepages-64kB/enabled set to always; the knob gets back the value found on every exit.
K=/sys/kernel/mm/transparent_hugepage
old=$(sed 's/.*\[\(.*\)\].*/\1/' $K/hugepages-64kB/enabled)
trap 'echo "$old" > $K/hugepages-64kB/enabled; echo "restored: 64kB $(cat $K/hugepages-64kB/enabled)"' EXIT
trap 'exit 1' INT TERM
echo "knobs: enabled=$(cat $K/enabled) 64kB=$old 2048kB=$(cat $K/hugepages-2048kB/enabled)"
gcc -O1 -Wall -o /tmp/numa_maps "$(dirname "$0")/numa_maps.c" && /tmp/numa_maps || exit 1
echo always > $K/hugepages-64kB/enabled
/tmp/numa_maps mthp
