/* PMD-mapped anonymous THP on 6.18 (branch pmd-thp): what the huge zero page, mprotect,
 * mremap, MADV_DONTNEED, MADV_COLLAPSE and fork do to one 2 MiB PMD mapping. Needs no knob
 * change: transparent_hugepage/enabled is madvise, so MADV_HUGEPAGE asks for THP; run as
 * root for the pfns. Prints, per step, AnonHugePages and Rss of the vma (smaps), the pfn
 * (low 12 bits) and flags of a few pages, and the thp_* vmstat counters that moved. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define P 4096UL
#define H (2UL << 20)
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
#define KPF_THP 22
#define KPF_ZERO_PAGE 24
#define KPF_RESERVED 32
static int pm, kc, kf;
static const char *names[] = {"thp_fault_alloc", "thp_fault_fallback", "thp_collapse_alloc",
  "thp_split_pmd", "thp_split_page", "thp_deferred_split_page", "thp_zero_page_alloc",
  "thp_zero_page_alloc_failed", "thp_migration_split", 0};
static long old[16];
static uint64_t rd(int fd, uint64_t idx) { uint64_t v = 0; pread(fd, &v, 8, idx * 8); return v; }
static long vmstat(const char *name) {
  FILE *f = fopen("/proc/vmstat", "r"); char k[128]; long v, r = -1;
  while (fscanf(f, "%127s %ld", k, &v) == 2) if (!strcmp(k, name)) r = v;
  fclose(f); return r;
}
static void deltas(void) {
  for (int i = 0; names[i]; i++) {
    long v = vmstat(names[i]);
    if (v != old[i]) printf("  %s +%ld", names[i], v - old[i]);
    old[i] = v;
  }
  printf("\n");
}
static long smaps_field(char *addr, const char *field) {
  FILE *f = fopen("/proc/self/smaps", "r"); char l[512]; int in = 0; long v = -1;
  unsigned long s, e;
  while (fgets(l, sizeof l, f)) {
    if (sscanf(l, "%lx-%lx ", &s, &e) == 2 && strchr(l, '-') < strchr(l, ' ')) in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
    else if (in && !strncmp(l, field, strlen(field))) { v = atol(l + strlen(field) + 1); break; }
  }
  fclose(f); return v;
}
static void show(const char *step, char *base, const int *idx) {
  printf("%s: AnonHugePages %ld kB, Rss %ld kB, THPeligible %ld;", step,
         smaps_field(base, "AnonHugePages:"), smaps_field(base, "Rss:"),
         smaps_field(base, "THPeligible:"));
  for (int j = 0; idx[j] >= 0; j++) {
    int i = idx[j];
    uint64_t e = rd(pm, (uintptr_t)(base + i * P) / P);
    if (!(e >> 63)) { printf(" [%d:-]", i); continue; }
    uint64_t pfn = e & ((1ULL << 55) - 1), fl = rd(kf, pfn);
    printf(" [%d:%s%lu%s%s%s%s%s@%lx]", i, (e >> 56) & 1 ? "x" : "s",
           (unsigned long)rd(kc, pfn), (fl >> KPF_COMPOUND_HEAD) & 1 ? "H" : "",
           (fl >> KPF_COMPOUND_TAIL) & 1 ? "T" : "", (fl >> KPF_THP) & 1 ? "t" : "",
           (fl >> KPF_ZERO_PAGE) & 1 ? "z" : "", (fl >> KPF_RESERVED) & 1 ? "r" : "",
           (unsigned long)(pfn & 0xfff));
  }
  deltas();
}
static long vmpte(void) {
  FILE *f = fopen("/proc/self/status", "r"); char l[256]; long v = -1;
  while (fgets(l, sizeof l, f)) if (!strncmp(l, "VmPTE:", 6)) v = atol(l + 6);
  fclose(f); return v;
}
static char *aligned(size_t size, int huge) {
  char *p = mmap(0, size + 2 * H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *a = (char *)(((uintptr_t)p + H - 1) & ~(H - 1));
  /* leave unmapped guard space around so that vmas do not merge */
  if (a > p) munmap(p, a - p);
  munmap(a + size, p + size + 2 * H - (a + size));
  if (huge) madvise(a, size, MADV_HUGEPAGE);
  return a;
}
static const int ix[] = {0, 1, 2, 255, 256, 511, -1};
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  pm = open("/proc/self/pagemap", O_RDONLY); kc = open("/proc/kpagecount", O_RDONLY);
  kf = open("/proc/kpageflags", O_RDONLY);
  deltas();
  printf("legend: [i:<x exclusive|s shared><kpagecount><H head|T tail><t THP><z zero page>"
         "<r reserved>@pfn&0xfff]\n");
  volatile char *v;
  /* A: huge zero page read, then a write */
  char *a = aligned(H, 1);
  v = a; (void)v[0];
  show("A read", a, ix);
  a[P] = 1;
  show("A write page 1", a, ix);
  /* B: mprotect of the first half */
  char *b = aligned(H, 1);
  memset(b, 2, H);
  show("B write all", b, ix);
  mprotect(b, H / 2, PROT_READ);
  show("B mprotect first half RO", b, ix);
  mprotect(b, H / 2, PROT_READ | PROT_WRITE);
  show("B mprotect back RW (vmas merge)", b, ix);
  /* C: mremap by an aligned and an unaligned distance */
  char *c = aligned(H, 1);
  c[0] = 3;
  show("C fault", c, ix);
  char *dst = aligned(2 * H, 0);
  munmap(dst, 2 * H);
  char *c2 = mremap(c, H, H, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
  show("C mremap to 2M-aligned", c2, ix);
  char *dst2 = aligned(3 * H, 0);
  munmap(dst2, 3 * H);
  char *c3 = mremap(c2, H, H, MREMAP_MAYMOVE | MREMAP_FIXED, dst2 + P);
  show("C mremap to aligned+4K", c3, ix);
  printf("C content kept: %d\n", c3[0]);
  /* D: MADV_DONTNEED of pages 0-3 */
  char *d = aligned(H, 1);
  memset(d, 4, H);
  show("D write all", d, ix);
  madvise(d, 4 * P, MADV_DONTNEED);
  show("D DONTNEED pages 0-3", d, ix);
  /* E: MADV_COLLAPSE of 512 small pages, then of 10 small pages */
  char *e = aligned(H, 0);
  for (unsigned long i = 0; i < H; i += P) e[i] = (char)(i / P);
  show("E 512 small pages", e, ix);
  int r = madvise(e, H, MADV_COLLAPSE);
  show("E MADV_COLLAPSE", e, ix);
  printf("E collapse rc %d, content kept: %d %d\n", r, e[P], e[511 * P]);
  char *e2 = aligned(H, 0);
  for (int i = 0; i < 10; i++) e2[i * P] = 5;
  r = madvise(e2, H, MADV_COLLAPSE);
  show("E2 MADV_COLLAPSE of 10 pages", e2, ix);
  printf("E2 collapse rc %d\n", r);
  char *e3 = aligned(H, 0);
  v = e3; for (unsigned long i = 0; i < H; i += P) (void)v[i];  /* zero-page ptes */
  r = madvise(e3, H, MADV_COLLAPSE);
  show("E3 MADV_COLLAPSE of 512 zero-page ptes", e3, ix);
  printf("E3 collapse rc %d\n", r);
  /* F: fork, the child exits untouched, the parent writes */
  char *f = aligned(H, 1);
  memset(f, 6, H);
  show("F write all", f, ix);
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, 0, 0);
  show("F after fork + child exit", f, ix);
  f[P] = 7;
  show("F parent writes page 1", f, ix);
  /* G: fork, the parent writes while the child lives */
  int fds[2]; pipe(fds); char ch;
  pid = fork();
  if (pid == 0) { read(fds[0], &ch, 1); _exit(0); }
  f[2 * P] = 8;
  show("G parent writes page 2, child alive", f, ix);
  write(fds[1], "x", 1); waitpid(pid, 0, 0);
  f[3 * P] = 9;
  show("G child gone, parent writes page 3", f, ix);
  /* H: mlock of part, munmap of the whole */
  char *h = aligned(H, 1);
  memset(h, 10, H);
  mlock(h + 10 * P, P);
  show("H mlock page 10", h, ix);
  char *h2 = aligned(H, 1);
  memset(h2, 10, H);
  munmap(h2, H);
  printf("H2 munmap of a whole THP:"); deltas();
  /* I: mprotect of the whole THP and back */
  char *i1 = aligned(H, 1);
  memset(i1, 11, H);
  show("I write all", i1, ix);
  mprotect(i1, H, PROT_READ);
  show("I mprotect whole RO", i1, ix);
  mprotect(i1, H, PROT_READ | PROT_WRITE);
  i1[P] = 12;
  show("I mprotect back RW, write", i1, ix);
  /* J: MADV_COLD and MADV_FREE of a whole THP */
  char *j = aligned(H, 1);
  memset(j, 13, H);
  madvise(j, H, MADV_COLD);
  show("J MADV_COLD whole", j, ix);
  madvise(j, H, MADV_FREE);
  show("J MADV_FREE whole", j, ix);
  printf("J LazyFree %ld kB\n", smaps_field(j, "LazyFree:"));
  /* L: MADV_COLD and MADV_FREE of 4 pages of a THP (every 64th page written) */
  char *l1 = aligned(H, 1), *l2 = aligned(H, 1);
  for (unsigned long i = 0; i < H; i += 64 * P) { l1[i] = 14; l2[i] = 14; }
  show("L write every 64th page", l1, ix);
  show("L2 write every 64th page", l2, ix);
  madvise(l1, 4 * P, MADV_COLD);
  show("L MADV_COLD of pages 0-3", l1, ix);
  madvise(l2, 4 * P, MADV_FREE);
  show("L2 MADV_FREE of pages 0-3", l2, ix);
  /* K: VmPTE per THP, per huge zero PMD, and across a split (16 of each) */
  char *k = aligned(32 * H, 1), *kz = aligned(16 * H, 1);
  long before = vmpte();
  for (int n = 0; n < 16; n++) k[n * H] = 1;
  long thp = vmpte();
  for (int n = 0; n < 16; n++) (void)((volatile char *)kz)[n * H];
  long zero = vmpte();
  for (int n = 0; n < 16; n++) madvise(k + n * H, P, MADV_DONTNEED);
  printf("K VmPTE: +%ld kB for 16 THPs, +%ld kB for 16 huge zero PMDs, +%ld kB after "
         "splitting the 16 THPs\n", thp - before, zero - thp, vmpte() - zero);
  return 0;
}
