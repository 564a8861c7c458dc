#!/bin/sh
# Sets hugepages-64kB/enabled to always for the probe and restores it.
K=/sys/kernel/mm/transparent_hugepage/hugepages-64kB
old=$(sed 's/.*\[\(.*\)\].*/\1/' $K/enabled)
s0=$(cat $K/stats/anon_fault_alloc); d0=$(grep thp_deferred_split_page /proc/vmstat)
echo always > $K/enabled
"$(dirname "$0")/folio_mapcount"  # gcc -o folio_mapcount folio_mapcount.c
echo "$old" > $K/enabled
echo "64kB anon_fault_alloc: $s0 -> $(cat $K/stats/anon_fault_alloc); $d0 -> $(grep thp_deferred_split_page /proc/vmstat)"
echo "restored: $(cat $K/enabled)"
