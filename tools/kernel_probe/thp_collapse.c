/* MADV_COLLAPSE details on 6.18 (branch pmd-thp), each case in a vma isolated by
 * PROT_NONE guards so that it merges with nothing (and inherits no anon_vma): what an
 * untouched range, zero-page ptes only, a read-only vma, VM_NOHUGEPAGE and pages shared
 * with a fork child do; and whether a THP vma refaults a THP after MADV_DONTNEED of 512
 * small ptes (the PTE table stays). Needs no knob change; run as root for the pfns. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define P 4096UL
#define H (2UL << 20)
static int pm;
static long smaps_field(char *addr, const char *field) {
  FILE *f = fopen("/proc/self/smaps", "r"); char l[512]; int in = 0; long v = -1;
  unsigned long s, e;
  while (fgets(l, sizeof l, f)) {
    if (sscanf(l, "%lx-%lx ", &s, &e) == 2 && strchr(l, '-') < strchr(l, ' ')) in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
    else if (in && !strncmp(l, field, strlen(field))) { v = atol(l + strlen(field) + 1); break; }
  }
  fclose(f); return v;
}
static long vmstat(const char *name) {
  FILE *f = fopen("/proc/vmstat", "r"); char k[128]; long v, r = -1;
  while (fscanf(f, "%127s %ld", k, &v) == 2) if (!strcmp(k, name)) r = v;
  fclose(f); return r;
}
/* 2 MiB aligned, with a PROT_NONE page below and above */
static char *isolated(void) {
  char *p = mmap(0, 3 * H, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *a = (char *)(((uintptr_t)p + H - 1) & ~(H - 1));
  if (a == p) a += H;
  mprotect(a, H, PROT_READ | PROT_WRITE);
  return a;
}
static int collapse(char *a) { return madvise(a, H, MADV_COLLAPSE) ? errno : 0; }
static void report(const char *what, char *a, int err) {
  printf("%s: errno %s, AnonHugePages %ld kB, Rss %ld kB, thp_collapse_alloc %ld\n",
         what, err ? strerrorname_np(err) : "0", smaps_field(a, "AnonHugePages:"),
         smaps_field(a, "Rss:"), vmstat("thp_collapse_alloc"));
}
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  pm = open("/proc/self/pagemap", O_RDONLY);
  volatile char *v;
  char *a = isolated();
  report("untouched range", a, collapse(a));
  char *b = isolated();
  v = b; for (unsigned long i = 0; i < H; i += P) (void)v[i];
  report("512 zero-page ptes, no anon_vma", b, collapse(b));
  char *c = isolated();
  c[0] = 1;
  report("one written page", c, collapse(c));
  char *d = isolated();
  memset(d, 2, H);
  mprotect(d, H, PROT_READ);
  report("512 pages, vma read-only", d, collapse(d));
  char *e = isolated();
  memset(e, 3, H);
  madvise(e, H, MADV_NOHUGEPAGE);
  report("VM_NOHUGEPAGE", e, collapse(e));
  char *f = isolated();
  memset(f, 4, H);
  int fds[2]; pipe(fds); char ch;
  pid_t pid = fork();
  if (pid == 0) { read(fds[0], &ch, 1); _exit(f[5 * P] == 4 ? 0 : 1); }
  report("512 pages shared with a child", f, collapse(f));
  write(fds[1], "x", 1); int st; waitpid(pid, &st, 0);
  printf("child saw its old content: %s\n", WEXITSTATUS(st) == 0 ? "yes" : "no");
  char *r = isolated();
  memset(r, 7, H);
  report("range holding no whole aligned 2 MiB", r,
         madvise(r + P, H - 2 * P, MADV_COLLAPSE) ? errno : 0);
  char *g = isolated();
  madvise(g, H, MADV_HUGEPAGE);
  memset(g, 5, H);
  madvise(g, P, MADV_DONTNEED);  /* split */
  madvise(g, H, MADV_DONTNEED);  /* every pte gone, the PTE table stays */
  g[0] = 6;
  printf("THP vma refault after DONTNEED of 512 ptes: AnonHugePages %ld kB, Rss %ld kB\n",
         smaps_field(g, "AnonHugePages:"), smaps_field(g, "Rss:"));
  char *h = isolated();
  madvise(h, H, MADV_HUGEPAGE);
  memset(h, 5, H);
  madvise(h, H, MADV_DONTNEED);  /* zap_huge_pmd: the PMD and its table go */
  h[0] = 6;
  printf("THP vma refault after DONTNEED of the whole PMD: AnonHugePages %ld kB\n",
         smaps_field(h, "AnonHugePages:"));
  return 0;
}
