/* kernel_probe: the real kernel's side of `mmsim bench` (issue 12 item 1).
 *
 * Times, on this machine's kernel, the operations mmcore's benchmark times in the
 * simulator, over a private anonymous region of N 4 KiB pages (MADV_NOHUGEPAGE, so every
 * page takes its own fault, as mmcore models them):
 *   first_write  one byte written to each untouched page (do_anonymous_page)
 *   cow_write    one byte written to each page in a forked child (wp_page_copy)
 *   fork         fork() of a process with the N pages touched, timed in the parent
 *                (dup_mmap, copy_page_range)
 *   munmap       munmap() of the N touched pages (zap_pte_range, free_pages_and_swap_cache)
 *   mremap       mremap(MREMAP_MAYMOVE | MREMAP_FIXED) of the N touched pages to a new
 *                address (move_page_tables)
 * Each figure is the best of REPEAT runs, in nanoseconds per page. Output: one JSON object
 * on stdout. Usage: kernel_probe N REPEAT. Exit status 1 with a message on stderr when a
 * system call fails.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* A fresh private anonymous region of n pages, never backed by huge pages. */
static char *region(size_t n)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	if (madvise(p, n * PAGE, MADV_NOHUGEPAGE))
		die("madvise");
	return p;
}

static void touch(volatile char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i * PAGE] = 1;
}

static double first_write(size_t n)
{
	char *p = region(n);
	double t = now_ns();

	touch(p, n);
	t = now_ns() - t;
	munmap(p, n * PAGE);
	return t / n;
}

static double cow_write(size_t n)
{
	char *p = region(n);
	int fd[2];
	double t = 0;
	pid_t pid;

	touch(p, n);
	if (pipe(fd))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		t = now_ns();
		for (size_t i = 0; i < n; i++)
			((volatile char *)p)[i * PAGE] = 2;
		t = now_ns() - t;
		if (write(fd[1], &t, sizeof(t)) != sizeof(t))
			_exit(1);
		_exit(0);
	}
	if (read(fd[0], &t, sizeof(t)) != sizeof(t))
		die("read from the child");
	waitpid(pid, NULL, 0);
	close(fd[0]);
	close(fd[1]);
	munmap(p, n * PAGE);
	return t / n;
}

static double fork_cost(size_t n)
{
	char *p = region(n);
	double t;
	pid_t pid;

	touch(p, n);
	t = now_ns();
	pid = fork();
	if (pid == 0)
		_exit(0);
	t = now_ns() - t;
	if (pid < 0)
		die("fork");
	waitpid(pid, NULL, 0);
	munmap(p, n * PAGE);
	return t / n;
}

static double munmap_cost(size_t n)
{
	char *p = region(n);
	double t;

	touch(p, n);
	t = now_ns();
	if (munmap(p, n * PAGE))
		die("munmap");
	return (now_ns() - t) / n;
}

static double mremap_cost(size_t n)
{
	char *p = region(n);
	char *dst = mmap(NULL, n * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double t;
	void *moved;

	if (dst == MAP_FAILED)
		die("mmap");
	touch(p, n);
	t = now_ns();
	moved = mremap(p, n * PAGE, n * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	t = now_ns() - t;
	if (moved == MAP_FAILED)
		die("mremap");
	munmap(moved, n * PAGE);
	return t / n;
}

static double best(double (*fn)(size_t), size_t n, int repeat)
{
	double low = fn(n);

	for (int i = 1; i < repeat; i++) {
		double t = fn(n);

		if (t < low)
			low = t;
	}
	return low;
}

int main(int argc, char **argv)
{
	size_t n;
	int repeat;

	if (argc != 3 || (n = strtoul(argv[1], NULL, 10)) == 0 ||
	    (repeat = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: %s PAGES REPEAT\n", argv[0]);
		return 2;
	}
	printf("{\"pages\": %zu, \"repeat\": %d, \"ns_per_page\": {"
	       "\"first_write\": %.2f, \"cow_write\": %.2f, \"fork\": %.2f, "
	       "\"munmap\": %.2f, \"mremap\": %.2f}}\n", n, repeat,
	       best(first_write, n, repeat), best(cow_write, n, repeat),
	       best(fork_cost, n, repeat), best(munmap_cost, n, repeat),
	       best(mremap_cost, n, repeat));
	return 0;
}
