#!/bin/sh
# Builds folio_procfs.c into /tmp and runs it with hugepages-64kB/enabled set to always;
# the knob gets back the value found on every exit, the probe failing or interrupted.
K=/sys/kernel/mm/transparent_hugepage
old=$(sed 's/.*\[\(.*\)\].*/\1/' $K/hugepages-64kB/enabled)
trap 'echo "$old" > $K/hugepages-64kB/enabled; echo "restored: 64kB $(cat $K/hugepages-64kB/enabled)"' EXIT
trap 'exit 1' INT TERM
echo "knobs: enabled=$(cat $K/enabled) 64kB=$old 2048kB=$(cat $K/hugepages-2048kB/enabled)"
echo always > $K/hugepages-64kB/enabled
gcc -O1 -o /tmp/folio_procfs "$(dirname "$0")/folio_procfs.c" && /tmp/folio_procfs
