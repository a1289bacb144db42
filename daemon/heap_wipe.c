/* heap_wipe.c — tokensealed wipes every heap block before it is freed or moved, so that no data key outlives its message in freed memory. */
/*
 * Secrets of our own live in sodium_malloc memory. But a data key also
 * passes through sd-bus message bodies (a Wrap request, an Unwrap or
 * UnwrapBatch reply), which sd-bus keeps in malloc memory and grows with
 * realloc as arguments are appended: the block that realloc leaves behind
 * holds the keys appended so far, and nothing wipes it.
 * sd_bus_message_sensitive() wipes only the body's final block. So the
 * daemon replaces free() and realloc() with versions that wipe the block
 * (its whole usable size) first, on top of glibc's allocator (__libc_*).
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

void free(void *p)
{
	if (!p)
		return;
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
