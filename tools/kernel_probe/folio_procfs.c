/* What /proc and /sys show of large folios on 6.18 (CONFIG_PAGE_MAPCOUNT=y, CONFIG_MM_ID=y):
 * smaps / smaps_rollup counters, meminfo AnonPages / AnonHugePages, pagemap PM_MMAP_EXCLUSIVE,
 * kpagecount, kpageflags and the thp_* vmstat and hugepages-<size>kB/stats deltas, for a
 * 64 KiB mTHP and for PMD THPs through fault, fork, a child's COW of one page, munmap of
 * one page and MADV_DONTNEED of part. Run through folio_procfs.sh (root; it sets
 * hugepages-64kB/enabled to always and restores it). */
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
#define KPF_ANON 12
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
#define KPF_THP 22
static int pm, kc, kf;
static uint64_t rd(int fd, uint64_t idx) { uint64_t v = 0; pread(fd, &v, 8, idx * 8); return v; }

/* One page: f PM_FILE, x/s (PM_MMAP_EXCLUSIVE), kpagecount, H head T tail t THP a ANON. */
static void page_desc(char *addr, char *out) {
  uint64_t e = rd(pm, (uintptr_t)addr / P);
  if (!(e >> 63)) { strcpy(out, "-"); return; }
  uint64_t pfn = e & ((1ULL << 55) - 1), fl = rd(kf, pfn);
  sprintf(out, "%s%s%lu%s%s%s%s", (e >> 61) & 1 ? "f" : "", (e >> 56) & 1 ? "x" : "s",
          (unsigned long)rd(kc, pfn),
          (fl >> KPF_COMPOUND_HEAD) & 1 ? "H" : "", (fl >> KPF_COMPOUND_TAIL) & 1 ? "T" : "",
          (fl >> KPF_THP) & 1 ? "t" : "", (fl >> KPF_ANON) & 1 ? "a" : "");
}
/* Pages 0..show-1 one by one, then a histogram of the descriptions of all n pages. */
static void pages(char *base, int n, int show) {
  char d[32], keys[16][32]; int cnt[16], nk = 0;
  printf("  pages:");
  for (int i = 0; i < n; i++) {
    page_desc(base + i * P, d);
    if (i < show) printf(" %d:%s", i, d);
    int k = 0; while (k < nk && strcmp(keys[k], d)) k++;
    if (k == nk && nk < 16) { strcpy(keys[nk], d); cnt[nk++] = 0; }
    if (k < 16) cnt[k]++;
  }
  if (n > show) { printf("  | all %d:", n); for (int k = 0; k < nk; k++) printf(" %s*%d", keys[k], cnt[k]); }
  printf("\n");
}
static const char *smaps_keys[] = {"Size", "Rss", "Pss", "Pss_Dirty", "Shared_Clean", "Shared_Dirty",
  "Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "AnonHugePages", "THPeligible", 0};
/* smaps of every vma overlapping [base, base + len). */
static void smaps(char *base, size_t len) {
  FILE *f = fopen("/proc/self/smaps", "r"); char l[512]; int in = 0;
  unsigned long s, e, lo = (uintptr_t)base, hi = lo + len;
  while (fgets(l, sizeof l, f)) {
    if (sscanf(l, "%lx-%lx ", &s, &e) == 2 && strchr(l, '-') < strchr(l, ' ')) {
      if (in) printf("\n");
      in = s < hi && e > lo;
      if (in) printf("  smaps +%lu..%lu:", (s - lo) / P, (e - lo) / P);
      continue;
    }
    if (!in) continue;
    for (int i = 0; smaps_keys[i]; i++) {
      size_t k = strlen(smaps_keys[i]);
      if (!strncmp(l, smaps_keys[i], k) && l[k] == ':') printf(" %s=%ld", smaps_keys[i], atol(l + k + 1));
    }
  }
  if (in) printf("\n");
  fclose(f);
}
#define NR 32
static const char *roll_keys[] = {"Rss", "Pss", "Pss_Dirty", "Pss_Anon", "Shared_Clean", "Shared_Dirty",
  "Private_Clean", "Private_Dirty", "Anonymous", "AnonHugePages", 0};
static long roll0[NR], mem0[2];
static void read_keys(const char *path, const char **keys, long *out) {
  FILE *f = fopen(path, "r"); char l[512];
  while (fgets(l, sizeof l, f))
    for (int i = 0; keys[i]; i++) {
      size_t k = strlen(keys[i]);
      if (!strncmp(l, keys[i], k) && l[k] == ':') out[i] = atol(l + k + 1);
    }
  fclose(f);
}
static const char *mem_keys[] = {"AnonPages", "AnonHugePages", 0};
/* The vmstat thp_* lines and the 64 kB and 2048 kB stats, as deltas since the last call. */
#define NV 64
static char vname[NV][64]; static long vlast[NV]; static int nv;
static void counter(const char *name, long v, int quiet) {
  int i = 0; while (i < nv && strcmp(vname[i], name)) i++;
  if (i == nv) { strcpy(vname[nv], name); vlast[nv++] = v; return; }
  if (v != vlast[i] && !quiet) printf(" %s%+ld", name, v - vlast[i]);
  vlast[i] = v;
}
static void counters(int quiet) {
  FILE *f = fopen("/proc/vmstat", "r"); char l[256], n[64]; long v;
  if (!quiet) printf("  counters:");
  while (fgets(l, sizeof l, f))
    if (sscanf(l, "%63s %ld", n, &v) == 2 && !strncmp(n, "thp_", 4)) counter(n, v, quiet);
  fclose(f);
  static const char *st[] = {"anon_fault_alloc", "anon_fault_fallback", "split", "split_deferred",
    "nr_anon", "nr_anon_partially_mapped", 0};
  static const char *sz[] = {"64", "2048", 0};
  for (int z = 0; sz[z]; z++)
    for (int i = 0; st[i]; i++) {
      char p[200]; sprintf(p, "/sys/kernel/mm/transparent_hugepage/hugepages-%skB/stats/%s", sz[z], st[i]);
      FILE *g = fopen(p, "r"); if (!g) continue;
      if (fscanf(g, "%ld", &v) == 1) { sprintf(n, "%sk.%s", sz[z], st[i]); counter(n, v, quiet); }
      fclose(g);
    }
  if (!quiet) printf("\n");
}
static void baseline(void) {
  read_keys("/proc/self/smaps_rollup", roll_keys, roll0);
  read_keys("/proc/meminfo", mem_keys, mem0);
  counters(1);
}
static void report(const char *who, const char *step, char *base, int n, int show) {
  long r[NR] = {0}, mm[2] = {0};
  printf("%s: %s\n", who, step);
  smaps(base, n * P);
  read_keys("/proc/self/smaps_rollup", roll_keys, r);
  printf("  rollup delta:");
  for (int i = 0; roll_keys[i]; i++) printf(" %s%+ld", roll_keys[i], r[i] - roll0[i]);
  read_keys("/proc/meminfo", mem_keys, mm);
  printf("\n  meminfo delta: AnonPages%+ld AnonHugePages%+ld\n", mm[0] - mem0[0], mm[1] - mem0[1]);
  pages(base, n, show);
  counters(0);
}
/* A private anonymous vma of exactly `size` bytes at an `align`-aligned address (+ skew). */
static char *region(size_t size, size_t align, size_t skew) {
  size_t span = size + 2 * align;
  char *p = mmap(0, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *a = (char *)(((uintptr_t)p + align - 1) & ~(align - 1)) + skew;
  if (a > p) munmap(p, a - p);
  munmap(a + size, p + span - (a + size));
  return a;
}
static void refork(void) { close(pm); pm = open("/proc/self/pagemap", O_RDONLY); }

/* One region through fault, fork, the child's COW of page `cow` (reported by the child and
 * by the parent while the child lives), and the parent after the child's exit. */
static void fork_cow(const char *what, char *a, int n, int show, int cow) {
  char step[128]; int fds[2]; char b;
  a[0] = 1;
  sprintf(step, "%s after first write", what); report("parent", step, a, n, show);
  pipe(fds);
  pid_t c = fork();
  if (c == 0) {
    refork(); baseline();
    sprintf(step, "%s after fork (child view)", what); report("child ", step, a, n, show);
    a[cow * P] = 2;
    sprintf(step, "%s after COW write of page %d (child view)", what, cow);
    report("child ", step, a, n, show);
    write(fds[1], "x", 1); sleep(1); _exit(0);
  }
  read(fds[0], &b, 1);
  sprintf(step, "%s while the child lives, after its COW of page %d", what, cow);
  report("parent", step, a, n, show);
  waitpid(c, 0, 0); close(fds[0]); close(fds[1]);
  sprintf(step, "%s after the child's exit", what); report("parent", step, a, n, show);
}

int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  pm = open("/proc/self/pagemap", O_RDONLY); kc = open("/proc/kpagecount", O_RDONLY);
  kf = open("/proc/kpageflags", O_RDONLY);
  printf("legend: page i:<f PM_FILE><x PM_MMAP_EXCLUSIVE | s not><kpagecount><H head><T tail><t THP><a ANON>;"
         " smaps +first..end in pages of the region; deltas in kB since the process's baseline\n");
  /* THPeligible of plain vmas while 64kB is always and the PMD size is inherit(=madvise). */
  char *e4 = region(4 * P, 64 * 1024, 0), *e16 = region(16 * P, 64 * 1024, P);
  char *e32 = region(32 * P, 64 * 1024, P), *e16a = region(16 * P, 64 * 1024, 0);
  char *h16 = region(16 * P, 64 * 1024, P);
  madvise(h16, 16 * P, MADV_HUGEPAGE);
  char *n64 = region(16 * P, 64 * 1024, 0);
  madvise(n64, 16 * P, MADV_NOHUGEPAGE);
  printf("THPeligible:"); fflush(stdout);
  struct { const char *n; char *a; int p; } el[] = {{"4 pages", e4, 4}, {"16 unaligned", e16, 16},
    {"32 unaligned", e32, 32}, {"16 aligned", e16a, 16}, {"16 unaligned hg", h16, 16},
    {"16 aligned nh", n64, 16}};
  for (int i = 0; i < 6; i++) { printf("\n %s", el[i].n); smaps(el[i].a, el[i].p * P); }
  printf("\n");

  baseline();
  /* --- 64 KiB mTHP (16 pages), no madvise --- */
  char *m = region(16 * P, 64 * 1024, 0);
  fork_cow("mTHP", m, 16, 16, 3);
  m[5 * P] = 3;
  report("parent", "mTHP after own write of page 5", m, 16, 16);
  munmap(m + 8 * P, P);
  report("parent", "mTHP after munmap of page 8", m, 16, 16);
  madvise(m + 12 * P, 4 * P, MADV_DONTNEED);
  report("parent", "mTHP after MADV_DONTNEED of pages 12-15", m, 16, 16);
  munmap(m, 16 * P);
  report("parent", "mTHP after munmap of the rest", m, 16, 0);

  /* --- PMD THP: the child COWs page 1 --- */
  baseline();
  char *h = region(2 << 20, 2 << 20, 0);
  madvise(h, 2 << 20, MADV_HUGEPAGE);
  fork_cow("PMD-A", h, 512, 4, 1);
  h[2 * P] = 3;
  report("parent", "PMD-A after own write of page 2", h, 512, 4);
  munmap(h + 100 * P, P);
  report("parent", "PMD-A after munmap of page 100", h, 512, 4);
  munmap(h, 2 << 20);
  report("parent", "PMD-A after munmap of the rest", h, 512, 0);

  /* --- PMD THP: the child COWs page 0 (the head page) --- */
  baseline();
  h = region(2 << 20, 2 << 20, 0);
  madvise(h, 2 << 20, MADV_HUGEPAGE);
  fork_cow("PMD-B", h, 512, 4, 0);
  munmap(h, 2 << 20);

  /* --- PMD THP: MADV_DONTNEED of its second half --- */
  baseline();
  h = region(2 << 20, 2 << 20, 0);
  madvise(h, 2 << 20, MADV_HUGEPAGE);
  h[0] = 1;
  report("parent", "PMD-C after first write", h, 512, 4);
  madvise(h + 256 * P, 256 * P, MADV_DONTNEED);
  report("parent", "PMD-C after MADV_DONTNEED of pages 256-511", h, 512, 4);
  munmap(h, 2 << 20);
  report("parent", "PMD-C after munmap", h, 512, 0);

  /* --- the huge zero PMD: a read fault --- */
  baseline();
  h = region(2 << 20, 2 << 20, 0);
  madvise(h, 2 << 20, MADV_HUGEPAGE);
  volatile char r = h[0]; (void)r;
  report("parent", "PMD-Z after a read (huge zero page)", h, 512, 4);
  munmap(h, 2 << 20);
  return 0;
}
