#!/bin/sh
# Runs mthp_rules, mthp_kpageflags and mthp_mlock (gcc -o X X.c) with
# hugepages-64kB/enabled set to always, then restores the knob. The probe's drop_caches (2: slab) runs the shrinkers.
K=/sys/kernel/mm/transparent_hugepage/hugepages-64kB
old=$(sed 's/.*\[\(.*\)\].*/\1/' $K/enabled)
echo always > $K/enabled
"$(dirname "$0")/mthp_rules"
"$(dirname "$0")/mthp_kpageflags"
"$(dirname "$0")/mthp_mlock"
echo "$old" > $K/enabled
echo "restored: $(cat $K/enabled)"
