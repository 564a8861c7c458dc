/* Large-folio mapcounts as /proc shows them on 6.18 (CONFIG_PAGE_MAPCOUNT=y, CONFIG_MM_ID=y).
 * Run as root with hugepages-64kB/enabled=always (the probe script sets and restores it).
 * Prints, per step, for each base page of one 64 KiB mTHP and one PMD THP: the pfn,
 * PM_MMAP_EXCLUSIVE, kpagecount and the compound/THP kpageflags. */
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
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
#define KPF_THP 22
#define KPF_ANON 12
static int pm, kc, kf;
static uint64_t rd(int fd, uint64_t idx) { uint64_t v = 0; pread(fd, &v, 8, idx * 8); return v; }
static void show(const char *who, const char *step, char *base, int n) {
  printf("%s %s:", who, step);
  for (int i = 0; i < n; i++) {
    uint64_t e = rd(pm, (uintptr_t)(base + i * P) / P);
    if (!(e >> 63)) { printf(" [%d:-]", i); continue; }
    uint64_t pfn = e & ((1ULL << 55) - 1), fl = rd(kf, pfn);
    printf(" [%d:%s%lu%s%s%s]", i, (e >> 56) & 1 ? "x" : "s", (unsigned long)rd(kc, pfn),
           (fl >> KPF_COMPOUND_HEAD) & 1 ? "H" : "", (fl >> KPF_COMPOUND_TAIL) & 1 ? "T" : "",
           (fl >> KPF_THP) & 1 ? "t" : "");
    printf("@%lx", (unsigned long)(pfn & 0xfff));
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
static char *aligned(size_t size, size_t align) {
  char *p = mmap(0, size + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *a = (char *)(((uintptr_t)p + align - 1) & ~(align - 1));
  return a;
}
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  pm = open("/proc/self/pagemap", O_RDONLY); kc = open("/proc/kpagecount", O_RDONLY);
  kf = open("/proc/kpageflags", O_RDONLY);
  printf("legend: [i:<x exclusive or s shared><kpagecount><H head, T tail><t THP>@low 12 bits of the pfn]\n");
  /* --- 64 KiB mTHP (16 pages) --- */
  char *m = aligned(64 * 1024, 64 * 1024);
  /* no madvise: the 64K size is "always", the PMD size "inherit" (= madvise) */
  m[0] = 1;
  show("parent", "mTHP after first write", m, 16);
  int fds[2]; pipe(fds);
  pid_t c = fork();
  if (c == 0) {
    close(pm); pm = open("/proc/self/pagemap", O_RDONLY); /* the child's own */
    show("child ", "after fork", m, 16);
    m[3 * P] = 2;
    show("child ", "after COW write of page 3", m, 16);
    write(fds[1], "x", 1); sleep(2); _exit(0);
  }
  char b; read(fds[0], &b, 1);
  show("parent", "after child's COW of page 3", m, 16);
  waitpid(c, 0, 0);
  show("parent", "after child exit", m, 16);
  m[5 * P] = 3;
  show("parent", "after own write of page 5 (reuse?)", m, 16);
  munmap(m + 8 * P, P);
  show("parent", "after munmap of page 8", m, 16);
  madvise(m + 12 * P, 4 * P, MADV_DONTNEED);
  show("parent", "after MADV_DONTNEED of pages 12-15", m, 16);
  /* --- PMD THP (512 pages, show 4 + last) --- */
  char *h = aligned(2 << 20, 2 << 20);
  madvise(h, 2 << 20, MADV_HUGEPAGE);
  h[0] = 1;
  show("parent", "PMD THP after first write (pages 0-3)", h, 4);
  printf("parent AnonHugePages %ld kB\n", smaps_field(h, "AnonHugePages:"));
  pipe(fds);
  c = fork();
  if (c == 0) {
    close(pm); pm = open("/proc/self/pagemap", O_RDONLY);
    show("child ", "PMD after fork", h, 4);
    h[P] = 2;
    show("child ", "PMD after COW write of page 1", h, 4);
    printf("child AnonHugePages %ld kB\n", smaps_field(h, "AnonHugePages:"));
    write(fds[1], "x", 1); sleep(2); _exit(0);
  }
  read(fds[0], &b, 1);
  show("parent", "PMD after child's COW", h, 4);
  printf("parent AnonHugePages %ld kB\n", smaps_field(h, "AnonHugePages:"));
  waitpid(c, 0, 0);
  h[2 * P] = 3;
  show("parent", "PMD after child exit and own write of page 2", h, 4);
  printf("parent AnonHugePages %ld kB\n", smaps_field(h, "AnonHugePages:"));
  munmap(h + 100 * P, P);
  show("parent", "PMD after munmap of page 100", h, 4);
  printf("parent AnonHugePages %ld kB\n", smaps_field(h, "AnonHugePages:"));
  return 0;
}
