/* MADV_PAGEOUT on a machine without swap (docs/kernel-facts.md section 12).
 * Build: gcc -O0 -o pageout_noswap pageout_noswap.c   Run (as root, swapoff): ./pageout_noswap
 * Prints, for a private anon page, a clean private file page, a shmem page, a dirty shared
 * file page and a clean file page another process maps too, whether the page is still
 * present in /proc/self/pagemap after MADV_PAGEOUT, and its content. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <errno.h>
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
static int incore(void *a){unsigned char v=0; mincore(a,4096,&v); return v&1;}
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
  printf("clean file: before present=%d madvise=%d after present=%d in page cache=%d\n",(int)(b>>63),r,(int)(pm(f)>>63),incore(f));
  char *s=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0); strcpy(s,"shm");
  r=madvise(s,4096,MADV_PAGEOUT);
  printf("shmem: madvise=%d present=%d in page cache=%d",r,(int)(pm(s)>>63),incore(s));
  printf(" content=%s\n",s);
  int fd2=open("/tmp/pageout_probe2",O_RDWR|O_CREAT|O_TRUNC,0600); write(fd2,buf,8192); fsync(fd2);
  char *d=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED,fd2,0); d[0]='D';
  r=madvise(d,4096,MADV_PAGEOUT);
  printf("dirty shared file: madvise=%d present=%d",r,(int)(pm(d)>>63));
  printf(" content=%c\n",d[0]);
  fsync(fd2); r=madvise(d,4096,MADV_PAGEOUT);
  printf("same page after fsync: madvise=%d present=%d in page cache=%d\n",r,(int)(pm(d)>>63),incore(d));
  char *c2=mmap(0,4096,PROT_READ,MAP_SHARED,fd2,4096); c=c2[0];
  if(fork()==0){ c=c2[0]; sleep(1); _exit(0);} usleep(200000);
  r=madvise(c2,4096,MADV_PAGEOUT);
  printf("clean file page mapped by two processes: madvise=%d present=%d\n",r,(int)(pm(c2)>>63));
  wait(NULL);
  char *l=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); l[0]=1; mlock(l,4096);
  errno=0; r=madvise(l,4096,MADV_PAGEOUT); int e=errno;
  errno=0; int r2=madvise(l,4096,MADV_COLD);
  printf("mlocked anon: MADV_PAGEOUT=%d errno=%d (EINVAL=%d) MADV_COLD=%d errno=%d\n",r,e,EINVAL,r2,errno);
  unlink("/tmp/pageout_probe"); unlink("/tmp/pageout_probe2");
  return 0;}
