/* MADV_PAGEOUT on a machine without swap (docs/kernel-facts.md section 12).
 * Build: gcc -O0 -o pageout_noswap pageout_noswap.c   Run (as root, swapoff): ./pageout_noswap
 * Prints, for a private anon page, a clean private file page and a shmem page, whether
 * the page is still present in /proc/self/pagemap after MADV_PAGEOUT, and its content. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
static uint64_t pm(void *a){int fd=open("/proc/self/pagemap",O_RDONLY);uint64_t e=0;pread(fd,&e,8,((uintptr_t)a/4096)*8);close(fd);return e;}
int main(void){
  char *a=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  strcpy(a,"keep");
  int r=madvise(a,4096,MADV_PAGEOUT);
  printf("anon: madvise=%d present=%d swap=%d content=%s\n",r,(int)(pm(a)>>63),(int)((pm(a)>>62)&1),a);
  int fd=open("/tmp/pageout_probe",O_RDWR|O_CREAT|O_TRUNC,0600); char buf[8192]; memset(buf,'f',sizeof buf); write(fd,buf,8192); fsync(fd);
  char *f=mmap(0,8192,PROT_READ,MAP_PRIVATE,fd,0); volatile char c=f[0]; c=f[4096]; (void)c;
  uint64_t b=pm(f);
  r=madvise(f,8192,MADV_PAGEOUT);
  printf("clean file: before present=%d madvise=%d after present=%d\n",(int)(b>>63),r,(int)(pm(f)>>63));
  char *s=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0); strcpy(s,"shm");
  r=madvise(s,4096,MADV_PAGEOUT);
  printf("shmem: madvise=%d present=%d content=%s\n",r,(int)(pm(s)>>63),s);
  return 0;}
