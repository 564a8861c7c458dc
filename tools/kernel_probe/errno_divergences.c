/* Errno probes of issue 10 item 8 (docs/kernel-facts.md section 17).
 * Build: gcc -O0 -o errno_divergences errno_divergences.c
 * Run as root, then as an unprivileged user for the mmap_min_addr rows:
 *   setpriv --reuid=65534 --regid=65534 --clear-groups ./errno_divergences */
#define _GNU_SOURCE
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdlib.h>
#define P 4096
#define R(name, expr) do { errno=0; long r=(long)(expr); printf("%-36s r=%ld errno=%s\n", name, r, errno?strerrorname_np(errno):"0"); } while(0)
static void vmlck(const char *w){ FILE *f=fopen("/proc/self/status","r"); char l[256]; while(fgets(l,256,f)) if(!strncmp(l,"VmLck",5)) printf("%s: %s",w,l); fclose(f);}
static void calls(void) { 
  char *a = mmap(0, 20*P, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  munmap(a+4*P, 16*P);
  R("mlock past end", mlock(a, 8*P));
  printf("  locked first vma? (check maps) \n");
  R("munlock past end", munlock(a, 8*P));
  R("msync MS_SYNC unmapped after", msync(a+16*P, P, MS_SYNC));
  R("msync MS_ASYNC range runs into hole", msync(a, 8*P, MS_ASYNC));
  R("msync MS_SYNC range runs into hole", msync(a, 8*P, MS_SYNC));
  char *b = mmap(0, 8*P, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  munmap(b, 4*P);
  R("msync MS_ASYNC hole before vma", msync(b, 2*P, MS_ASYNC));
  R("msync MS_SYNC hole before vma", msync(b, 2*P, MS_SYNC));
  R("msync MS_ASYNC hole then vma", msync(b, 8*P, MS_ASYNC));
  R("msync MS_SYNC hole then vma", msync(b, 8*P, MS_SYNC));
  R("mremap fixed 0", mremap(a, P, P, MREMAP_MAYMOVE|MREMAP_FIXED, (void*)0));
  R("mremap fixed 0x1000", mremap(a, P, P, MREMAP_MAYMOVE|MREMAP_FIXED, (void*)0x1000));
  int fd = open("/tmp/errno_probe_f", O_RDWR|O_CREAT|O_TRUNC, 0600);
  R("pwrite 2^63-1", pwrite(fd, "x", 1, INT64_MAX));
  R("pwrite 2^63-2 len 2", pwrite(fd, "xx", 2, INT64_MAX-1));
  R("ftruncate 2^63-1", ftruncate(fd, INT64_MAX));
  R("ftruncate 2^62", ftruncate(fd, (off_t)1<<62));
  R("ftruncate -1", ftruncate(fd, -1));
  R("pread 2^63-1", pread(fd, a, 1, INT64_MAX));
  int sfd = open("/dev/shm/mmprobe", O_RDWR|O_CREAT|O_TRUNC, 0600);
  R("shm pwrite 2^63-1", pwrite(sfd, "x", 1, INT64_MAX));
  R("shm ftruncate 2^63-1", ftruncate(sfd, INT64_MAX));
  unlink("/dev/shm/mmprobe");
  pid_t c = fork(); if (c==0) _exit(3);
  int st; R("waitpid -1", waitpid(-1, &st, 0)); printf("  status %d\n", WEXITSTATUS(st));
  c = fork(); if (c==0) _exit(4);
  R("waitpid 0", waitpid(0, &st, 0)); printf("  status %d\n", WEXITSTATUS(st));
  c = fork(); if (c==0) { sleep(1); _exit(5);} 
  R("waitpid -1 WNOHANG running", waitpid(-1, &st, WNOHANG));
  R("waitpid -1 running", waitpid(-1, &st, 0));
  R("waitpid -1 no children", waitpid(-1, &st, WNOHANG));
  R("waitpid -pgid", waitpid(-getpgrp(), &st, WNOHANG));
  
}
static void offsets(void) { 
  char *a = mmap(0, 4*P, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  R("mremap fixed 0", mremap(a, P, P, MREMAP_MAYMOVE|MREMAP_FIXED, (void*)0));
  R("mremap fixed 0x1000", mremap(a, P, P, MREMAP_MAYMOVE|MREMAP_FIXED, (void*)0x1000));
  R("mremap fixed 0x10000", mremap(a, P, P, MREMAP_MAYMOVE|MREMAP_FIXED, (void*)0x10000));
  R("mmap fixed 0", mmap((void*)0, P, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0));
  const char *dirs[] = {"/tmp/errno_probe_g", "/dev/shm/mmprobe2"};
  for (int i=0;i<2;i++){ int fd = open(dirs[i], O_RDWR|O_CREAT|O_TRUNC, 0600); printf("%s\n", dirs[i]);
    R(" pwrite 2^62", pwrite(fd, "x", 1, (off_t)1<<62));
    R(" pwrite 2^63-2 len1", pwrite(fd, "x", 1, INT64_MAX-1));
    R(" ftruncate 2^62", ftruncate(fd, (off_t)1<<62));
    R(" ftruncate 2^63-1", ftruncate(fd, INT64_MAX));
    R(" pread 2^62", pread(fd, a+P, 1, (off_t)1<<62));
    R(" pread -1", pread(fd, a+P, 1, -1));
    R(" mmap off -4096", mmap(0, P, PROT_READ, MAP_SHARED, fd, -4096));
    R(" mmap off 2^63-4096 len 2P", mmap(0, 2*P, PROT_READ, MAP_SHARED, fd, INT64_MAX-4095));
    R(" mmap off 2^62", mmap(0, P, PROT_READ, MAP_SHARED, fd, (off_t)1<<62));
    unlink(dirs[i]); }
  
}
static void mlock_hole(void) { 
  char *a = mmap(0, 20*P, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  munmap(a+4*P, 16*P);
  vmlck("before");
  int r = mlock(a, 8*P); printf("mlock r=%d errno=%s\n", r, strerrorname_np(errno));
  vmlck("after mlock past end");
  unsigned char v[4]; mincore(a, 4*P, v); printf("mincore %d%d%d%d (populated?)\n", v[0]&1,v[1]&1,v[2]&1,v[3]&1);
   }
int main(void) { setvbuf(stdout, 0, _IONBF, 0); calls(); offsets(); mlock_hole(); return 0; }
