/* Syscall arguments as unsigned longs, issue 14 item 2 (docs/kernel-facts.md section 19).
 * Build: gcc -O0 -o syscall_arg_ranges syscall_arg_ranges.c
 * Run as root, then unprivileged for the RLIMIT_MEMLOCK rows:
 *   setpriv --reuid=65534 --regid=65534 --clear-groups ./syscall_arg_ranges
 * Each call runs in a forked child, so a call that unmaps too much cannot hide the rest. */
#define _GNU_SOURCE
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#define P 4096UL
#define TS ((1UL << 47) - P)
#define R(name, expr) do { fflush(stdout); pid_t c_ = fork(); if (c_) { int st_; waitpid(c_, &st_, 0); \
    if (!WIFEXITED(st_)) printf("%-44s -> signal %d\n", name, WTERMSIG(st_)); break; } \
    errno = 0; long r_ = (long)(expr); \
    printf("%-44s -> %s\n", name, r_ == -1 ? strerrorname_np(errno) : "ok"); fflush(stdout); _exit(0); } while (0)
int main(void) {
    int RW = PROT_READ | PROT_WRITE, PA = MAP_PRIVATE | MAP_ANONYMOUS;
    int fd = open("/tmp/syscall_arg_ranges.f", O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(fd, 8 * P);
    char *a = mmap(0, 16 * P, RW, PA, -1, 0), buf[16];
    R("mmap len=-4096", mmap(0, (size_t)-4096, RW, PA, -1, 0));
    R("mmap len=-1", mmap(0, (size_t)-1, RW, PA, -1, 0));
    R("mmap len=1<<63", mmap(0, 1UL << 63, RW, PA, -1, 0));
    R("mmap MAP_FIXED addr=-4096", mmap((void *)-4096L, P, RW, PA | MAP_FIXED, -1, 0));
    R("mmap MAP_FIXED addr=1<<47", mmap((void *)(1UL << 47), P, RW, PA | MAP_FIXED, -1, 0));
    R("mmap file off=-4096", syscall(SYS_mmap, 0, P, PROT_READ, MAP_SHARED, fd, -4096L));
    R("mmap file off=2**63-4096", syscall(SYS_mmap, 0, P, PROT_READ, MAP_SHARED, fd, 0x7ffffffffffff000L));
    R("mmap anon off=-4096", syscall(SYS_mmap, 0, P, RW, PA, -1, -4096L));
    R("munmap len=-4096", munmap(a, (size_t)-4096));
    R("munmap len=-1", munmap(a, (size_t)-1));
    R("munmap addr=-4096", munmap((void *)-4096L, P));
    R("munmap len=1<<47", munmap(a, 1UL << 47));
    R("mprotect len=-4096", mprotect(a, (size_t)-4096, PROT_READ));
    R("mprotect len=-1", mprotect(a, (size_t)-1, PROT_READ));
    R("mprotect addr=-4096", mprotect((void *)-4096L, P, PROT_READ));
    R("mprotect prot=-1", mprotect(a, P, -1));
    R("mprotect addr=-4096 len=0", mprotect((void *)-4096L, 0, PROT_READ));
    R("madvise len=-4096", madvise(a, (size_t)-4096, MADV_DONTNEED));
    R("madvise len=-1", madvise(a, (size_t)-1, MADV_DONTNEED));
    R("madvise addr=-4096", madvise((void *)-4096L, P, MADV_DONTNEED));
    R("madvise addr=1<<47", madvise((void *)(1UL << 47), P, MADV_DONTNEED));
    R("madvise advice=-1", madvise(a, P, -1));
    R("madvise addr=-4096 len=0", madvise((void *)-4096L, 0, MADV_DONTNEED));
    R("mlock len=-4096", mlock(a, (size_t)-4096));
    R("mlock len=-1", mlock(a, (size_t)-1));
    R("mlock a+1 len=-4096", mlock(a + 1, (size_t)-4096));
    R("mlock addr=-4096", mlock((void *)-4096L, P));
    R("mlock2 flags=-1", syscall(SYS_mlock2, a, P, -1));
    R("munlock len=-4096", munlock(a, (size_t)-4096));
    R("munlock len=-1", munlock(a, (size_t)-1));
    R("munlock addr=-4096", munlock((void *)-4096L, P));
    R("msync len=-4096", msync(a, (size_t)-4096, MS_SYNC));
    R("msync len=-1", msync(a, (size_t)-1, MS_SYNC));
    R("msync addr=-4096", msync((void *)-4096L, P, MS_SYNC));
    R("mseal len=-4096", syscall(462, a, (size_t)-4096, 0));
    R("mseal len=-1", syscall(462, a, (size_t)-1, 0));
    R("mseal addr=-4096", syscall(462, (void *)-4096L, P, 0));
    R("mseal addr=1<<47", syscall(462, (void *)(1UL << 47), P, 0));
    R("mremap new_len=-4096", mremap(a, 4 * P, (size_t)-4096, 0));
    R("mremap new_len=-1 MAYMOVE", mremap(a, 4 * P, (size_t)-1, MREMAP_MAYMOVE));
    R("mremap old_len=-4096", mremap(a, (size_t)-4096, 4 * P, 0));
    R("mremap old_len=-4096 MAYMOVE", mremap(a, (size_t)-4096, 4 * P, MREMAP_MAYMOVE));
    R("mremap old_len=1<<46", mremap(a, 1UL << 46, 4 * P, 0));
    R("mremap old_len=32P (shrink past the vma)", mremap(a, 32 * P, 4 * P, 0));
    R("mremap addr=-4096", mremap((void *)-4096L, P, P, 0));
    R("mremap new_len=TASK_SIZE+P MAYMOVE", mremap(a, 4 * P, TS + P, MREMAP_MAYMOVE));
    R("mremap FIXED new_addr=-65536", mremap(a, 16 * P, 16 * P, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)-65536L));
    R("mremap FIXED new_addr=1<<47", mremap(a, 16 * P, 16 * P, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(1UL << 47)));
    R("mremap flags=-1", mremap(a, 4 * P, 4 * P, -1));
    long b = syscall(SYS_brk, 0);
    R("brk(-4096) keeps the break", syscall(SYS_brk, -4096L) == b ? 0 : -1);
    R("brk(-1) keeps the break", syscall(SYS_brk, -1L) == b ? 0 : -1);
    R("brk(1<<47) keeps the break", syscall(SYS_brk, 1L << 47) == b ? 0 : -1);
    R("pread off=-1", pread(fd, buf, 1, -1));
    R("pread count=-1", pread(fd, buf, (size_t)-1, 0));
    R("ftruncate -1", ftruncate(fd, -1));
    R("close -1", close(-1));
    R("mlockall 0", mlockall(0));
    unlink("/tmp/syscall_arg_ranges.f");
    return 0;
}
