/* heap_wipe.c — tokensealed wipes every heap block before it is freed or moved, so that no data key outlives its message in freed memory. */
/*
 * Secrets of our own live in sodium_malloc memory. But a data key also
 * passes through sd-bus message bodies (a Wrap request, an Unwrap or
 * UnwrapBatch reply), which sd-bus keeps in malloc memory and grows with
 * realloc as arguments are appended: the block that realloc leaves behind
 * holds the keys appended so far, and nothing wipes it.
 * sd_bus_message_sensitive() wipes only the body's final block. So the
 * daemon replaces free() and realloc() with versions that wipe the block
 * (its whole usable size) first, on top of glibc's allocator (__libc_*),
 * except blocks glibc mapped on their own, which free() unmaps.
 * Linked into tokensealed only; the cost is one memset per free.
 *
 * An ASan build cannot replace the allocator ASan interposes; there ASan
 * fills freed blocks itself (max_free_fill_size below), and its realloc
 * always moves, through that fill.
 */
#define _GNU_SOURCE 1
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "max_free_fill_size=2147483647:free_fill_byte=0";
}

#else

extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);

/*
 * Blocks of 4 MiB or more are mapped on their own, always: glibc would
 * otherwise raise that line to the size of the largest such block freed
 * (up to 32 MiB), after which a client that announces a 30 MB message and
 * hangs up has the daemon take 30 MB from the heap and wipe all of it, in
 * its one loop, per connection. Below 4 MiB (a batch of 10,000 is about
 * 1 MiB) blocks stay in the heap, whose top is given back past 8 MiB free
 * (and by ts_daemon_trim_later after batches).
 */
__attribute__((constructor)) static void heap_lines(void)
{
	(void)mallopt(M_MMAP_THRESHOLD, 4 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 8 << 20);
}

/*
 * glibc's mark on a block it mapped on its own (IS_MMAPPED, bit 1 of the
 * size word just before the block): free() unmaps it, and its pages go back
 * to the kernel, which zeroes them before anyone gets them again. Wiping it
 * first would only fault in and zero pages never written: a client that
 * announces a 32 MiB message and hangs up would cost the daemon 32 MiB of
 * memset per connection, in its one loop.
 */
static int mapped_alone(const void *p)
{
	return (((const size_t *)p)[-1] & 0x2) != 0;
}

void free(void *p)
{
	if (!p)
		return;
	if (!mapped_alone(p))
		explicit_bzero(p, malloc_usable_size(p));
	__libc_free(p);
}

void *realloc(void *p, size_t n)
{
	size_t have;
	void *q;

	if (!p)
		return __libc_malloc(n);
	if (n == 0) {
		free(p);
		return NULL;
	}
	/* Shrinking, or growing within the block: stay in place (glibc would too, or split the tail unwiped). */
	if (n <= (have = malloc_usable_size(p)))
		return p;
	/* Growing: always move, so the old block is wiped before glibc may reuse it. */
	if ((q = __libc_malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, have);
	free(p);
	return q;
}

#endif
