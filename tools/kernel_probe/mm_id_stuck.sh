#!/bin/sh
# Runs mm_id_stuck (gcc -o mm_id_stuck mm_id_stuck.c) with hugepages-64kB/enabled set to
# always, then restores the knob.
K=/sys/kernel/mm/transparent_hugepage/hugepages-64kB
old=$(sed 's/.*\[\(.*\)\].*/\1/' $K/enabled)
echo always > $K/enabled
"$(dirname "$0")/mm_id_stuck"
echo "$old" > $K/enabled
echo "restored: $(cat $K/enabled)"
