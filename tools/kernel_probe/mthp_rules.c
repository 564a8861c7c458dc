/* mTHP (64 KiB, PTE-mapped) rules of 6.18 that kernel-facts section 18 does not pin:
 * read faults, fallbacks at vma edges and next to populated ptes, which counters a partial
 * munmap / MADV_DONTNEED / mprotect / mremap / MADV_FREE moves, and the deferred-split
 * shrinker (run through drop_caches). Run by mthp_rules.sh, which sets
 * hugepages-64kB/enabled to always and restores it. Root: pagemap pfns, kpageflags. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#define P 4096UL
#define K64 (64 * 1024UL)
static int pm, kf, kc;
static const char *S = "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/stats/";
static uint64_t rd(int fd, uint64_t idx) { uint64_t v = 0; pread(fd, &v, 8, idx * 8); return v; }
static long stat64k(const char *name) {
  char path[256]; snprintf(path, sizeof path, "%s%s", S, name);
  FILE *f = fopen(path, "r"); long v = -1; if (f) { fscanf(f, "%ld", &v); fclose(f); } return v;
}
static long vmstat(const char *name) {
  FILE *f = fopen("/proc/vmstat", "r"); char k[128]; long v, r = -1;
  while (fscanf(f, "%127s %ld", k, &v) == 2) if (!strcmp(k, name)) r = v;
  fclose(f); return r;
}
/* One line per page: - not present, z zero page, H/T head/tail, 0 order-0; then count. */
static void show(const char *step, char *base, int n) {
  printf("%-34s", step);
  for (int i = 0; i < n; i++) {
    uint64_t e = rd(pm, (uintptr_t)(base + i * P) / P);
    if (!(e >> 63)) { printf(" -"); continue; }
    uint64_t pfn = e & ((1ULL << 55) - 1), fl = rd(kf, pfn);
    char c = (fl >> 24) & 1 ? 'z' : (fl >> 15) & 1 ? 'H' : (fl >> 16) & 1 ? 'T' : '0';
    printf(" %c%lu", c, (unsigned long)rd(kc, pfn));
  }
  printf("\n");
}
static long c_alloc, c_fb, c_sd, c_pm, c_split, c_tdsp, c_tsp;
static void snap(void) {
  c_alloc = stat64k("anon_fault_alloc"); c_fb = stat64k("anon_fault_fallback");
  c_sd = stat64k("split_deferred"); c_pm = stat64k("nr_anon_partially_mapped");
  c_split = stat64k("split"); c_tdsp = vmstat("thp_deferred_split_page");
  c_tsp = vmstat("thp_split_page");
}
/* Deltas since snap(); other processes may fault 64 kB folios meanwhile (the knob is global). */
static void deltas(const char *what) {
  printf("  %s: anon_fault_alloc %+ld fallback %+ld split_deferred %+ld "
         "nr_anon_partially_mapped %+ld split %+ld thp_deferred_split_page %+ld "
         "thp_split_page %+ld\n", what, stat64k("anon_fault_alloc") - c_alloc,
         stat64k("anon_fault_fallback") - c_fb, stat64k("split_deferred") - c_sd,
         stat64k("nr_anon_partially_mapped") - c_pm, stat64k("split") - c_split,
         vmstat("thp_deferred_split_page") - c_tdsp, vmstat("thp_split_page") - c_tsp);
}
static char *aligned(size_t size) {
  char *p = mmap(0, size + K64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *a = (char *)(((uintptr_t)p + K64 - 1) & ~(K64 - 1));
  if (a > p) munmap(p, a - p);
  munmap(a + size, p + K64 - a);
  return a;
}
static void drop_caches(void) { int fd = open("/proc/sys/vm/drop_caches", O_WRONLY); write(fd, "2", 1); close(fd); }
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  pm = open("/proc/self/pagemap", O_RDONLY); kf = open("/proc/kpageflags", O_RDONLY);
  kc = open("/proc/kpagecount", O_RDONLY);
  printf("legend: - not present, z zero page, H head, T tail, 0 order-0 page; then kpagecount\n");
  char *a = aligned(K64); volatile char x = a[5 * P]; (void)x;
  show("A read page 5", a, 16);
  a[5 * P] = 1; show("A then write page 5", a, 16);
  a[6 * P] = 1; show("A then write page 6", a, 16);
  char *b = aligned(2 * K64); munmap(b + K64 + 8 * P, 8 * P);  /* vma: 16 + 8 pages */
  snap(); b[K64 + 2 * P] = 1; show("B write in a 8-page tail", b + K64, 8); deltas("B");
  char *c = aligned(K64); c[3 * P] = 1; c[15 * P] = 1;
  snap(); munmap(c + 3 * P, P); show("C munmap page 3", c, 16); deltas("C");
  snap(); munmap(c + 4 * P, P); show("C munmap page 4 too", c, 16); deltas("C again");
  snap(); drop_caches(); show("C after the shrinkers ran", c, 16); deltas("C shrink");
  char *d = aligned(K64); d[0] = 1;
  snap(); madvise(d + 4 * P, 4 * P, MADV_DONTNEED); show("D DONTNEED 4..7", d, 16); deltas("D");
  char *e = aligned(K64); e[0] = 1;
  snap(); mprotect(e + 4 * P, 4 * P, PROT_READ); show("E mprotect 4..7 RO", e, 16); deltas("E");
  snap(); mprotect(e + 4 * P, 4 * P, PROT_READ | PROT_WRITE); e[5 * P] = 2;
  show("E write 5 after PROT_RW again", e, 16); deltas("E write");
  char *f = aligned(K64); f[0] = 1; char *t = aligned(K64);
  snap(); char *moved = mremap(f + 4 * P, 4 * P, 4 * P, MREMAP_MAYMOVE | MREMAP_FIXED, t + 4 * P);
  show("F after mremap of 4..7: source", f, 16); show("F destination", t, 16); deltas("F");
  (void)moved;
  char *g = aligned(K64); g[0] = 1;
  snap(); madvise(g + 4 * P, 4 * P, MADV_FREE); show("G MADV_FREE 4..7", g, 16); deltas("G");
  char *h = aligned(K64); h[0] = 1;
  snap(); madvise(h, K64, MADV_FREE); show("H MADV_FREE whole folio", h, 16); deltas("H");
  char *i = aligned(K64); i[0] = 1;
  snap(); mlock(i + 4 * P, 4 * P); show("I mlock 4..7", i, 16); deltas("I"); munlock(i, K64);
  char *j = aligned(K64); j[0] = 1;
  snap(); pid_t pid = fork();
  if (!pid) { munmap(j + 3 * P, P); _exit(0); }
  waitpid(pid, 0, 0); show("J child munmapped page 3, exited", j, 16); deltas("J");
  char *k = aligned(K64); k[0] = 1;
  snap(); pid = fork();
  if (!pid) { k[3 * P] = 9; _exit(0); }
  waitpid(pid, 0, 0); show("K child wrote page 3, exited", k, 16); deltas("K");
  return 0;
}
