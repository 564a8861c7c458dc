#!/bin/sh
# What /sys/kernel/mm/transparent_hugepage/khugepaged/ shows and which writes it takes
# (mm/khugepaged.c: the *_show()/*_store() of khugepaged_attr). Run as root. Every
# accepted write stores the value already there (written as +N, which kstrtoul()
# takes), and each knob is written back from the saved copy at the end.
D=/sys/kernel/mm/transparent_hugepage/khugepaged
cd "$D" || exit 1
for f in *; do printf '%s=%s ' "$f" "$(cat "$f")"; done; echo
saved=$(for f in alloc_sleep_millisecs defrag max_ptes_none max_ptes_shared max_ptes_swap \
	pages_to_scan scan_sleep_millisecs; do printf '%s=%s ' "$f" "$(cat "$f")"; done)
try() {  # file value: the write's result (errno name, from one write(2))
	r=$(python3 -c 'import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY); os.write(fd, sys.argv[2].encode()); print("ok")
except OSError as e:
    print(os.strerror(e.errno))' "$1" "$2")
	printf '%-22s %-8s -> %s\n' "$1" "'$2'" "$r"
}
for f in max_ptes_none max_ptes_swap max_ptes_shared; do
	try $f 512; try $f -1; try $f "+$(cat $f)"; try $f " $(cat $f)"; try $f 0x1
done
try pages_to_scan 0; try pages_to_scan 4294967296; try pages_to_scan "+$(cat pages_to_scan)"
try scan_sleep_millisecs 4294967296; try scan_sleep_millisecs "+$(cat scan_sleep_millisecs)"
try alloc_sleep_millisecs abc
try defrag 2; try defrag "$(cat defrag)"
try full_scans 0; try pages_collapsed 0
for kv in $saved; do printf '%s' "${kv#*=}" > "${kv%%=*}"; done
for f in *; do printf '%s=%s ' "$f" "$(cat "$f")"; done; echo
