/* core_memscan.c — test tool: search every readable mapping of a process (via /proc/PID/mem) for given byte strings. */
/*
 *   core_memscan PID PATTERN_FILE
 *
 * PATTERN_FILE has lines "LABEL... HEX" (the last field is the hex bytes,
 * as core_keys prints them). For each pattern prints "LABEL: N hits" where
 * a hit is the whole string or either half of it (a half-wiped copy still
 * counts). Exit 0 if the scan ran; 1 if it could not read the process.
 * Needs the right to ptrace the target (root with CAP_SYS_PTRACE). An ASan
 * target's shadow memory is skipped (it holds no data, only metadata).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#define MAX_PATTERNS 256
#define MAX_PATTERN 64
#define CHUNK (1u << 20)
/* ASan's shadow on x86-64 Linux (low shadow, gap, high shadow): [0x7fff8000, 0x10007fff8000). */
#define ASAN_SHADOW_START 0x7fff8000ull
#define ASAN_SHADOW_END 0x10007fff8000ull

typedef struct pattern {
	char label[64];
	uint8_t bytes[MAX_PATTERN];
	size_t len;
	unsigned long hits;
} pattern;

static size_t load_patterns(const char *path, pattern *pt)
{
	char line[512];
	size_t n = 0;
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "core_memscan: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	while (n < MAX_PATTERNS && fgets(line, sizeof(line), f)) {
		char *sp;

		line[strcspn(line, "\n")] = '\0';
		if ((sp = strrchr(line, ' ')) == NULL)
			continue;
		*sp = '\0';
		if (sodium_hex2bin(pt[n].bytes, sizeof(pt[n].bytes), sp + 1, strlen(sp + 1), NULL, &pt[n].len, NULL) < 0 ||
		    pt[n].len < 16)
			continue;
		snprintf(pt[n].label, sizeof(pt[n].label), "%.60s", line);
		n++;
	}
	sodium_memzero(line, sizeof(line));
	fclose(f);
	return n;
}

/* Count occurrences of needle in hay; hits that straddle chunks are found through the overlap kept by the caller. */
static unsigned long count(const uint8_t *hay, size_t n, const uint8_t *needle, size_t len, size_t min_end)
{
	unsigned long c = 0;
	const uint8_t *p = hay, *end = hay + n;

	while ((size_t)(end - p) >= len && (p = memmem(p, (size_t)(end - p), needle, len)) != NULL) {
		/* Skip matches wholly inside the overlap: the previous chunk counted them. */
		if ((size_t)(p - hay) + len > min_end)
			c++;
		p++;
	}
	return c;
}

int main(int argc, char **argv)
{
	static pattern pt[MAX_PATTERNS];
	char path[64], line[512];
	uint8_t *buf;
	size_t np, overlap = 0;
	unsigned long long scanned = 0;
	int memfd, asan = 0;
	FILE *maps;

	if (argc != 3) {
		fprintf(stderr, "usage: core_memscan PID PATTERN_FILE\n");
		return 2;
	}
	if ((np = load_patterns(argv[2], pt)) == 0) {
		fprintf(stderr, "core_memscan: no patterns\n");
		return 1;
	}
	for (size_t i = 0; i < np; i++)
		if (pt[i].len > overlap)
			overlap = pt[i].len;
	snprintf(path, sizeof(path), "/proc/%s/maps", argv[1]);
	if ((maps = fopen(path, "r")) == NULL) {
		fprintf(stderr, "core_memscan: %s: %s\n", path, strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "/proc/%s/mem", argv[1]);
	if ((memfd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "core_memscan: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if ((buf = malloc(CHUNK + overlap)) == NULL)
		return 1;
	/* A target built with ASan (make SAN=1) has terabytes of shadow memory: metadata only, skipped. */
	while (fgets(line, sizeof(line), maps))
		if (strstr(line, "/libasan.so"))
			asan = 1;
	rewind(maps);
	while (fgets(line, sizeof(line), maps)) {
		uint64_t start, end;
		char perms[8];
		size_t have = 0;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &start, &end, perms) != 3 || perms[0] != 'r')
			continue;
		if (asan && start >= ASAN_SHADOW_START && end <= ASAN_SHADOW_END)
			continue;
		/* [vvar] and the like refuse reads; they hold no heap data. */
		for (uint64_t off = start; off < end;) {
			size_t want = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
			ssize_t got = pread(memfd, buf + have, want, (off_t)off);

			if (got <= 0)
				break;
			for (size_t i = 0; i < np; i++) {
				size_t h = pt[i].len / 2;
				pt[i].hits += count(buf, have + (size_t)got, pt[i].bytes, h, have);
				pt[i].hits += count(buf, have + (size_t)got, pt[i].bytes + h, pt[i].len - h, have);
			}
			scanned += (unsigned long long)got;
			off += (uint64_t)got;
			/* Keep the tail so a string across two chunks is still seen. */
			{
				size_t total = have + (size_t)got, keep = total < overlap - 1 ? total : overlap - 1;
				memmove(buf, buf + total - keep, keep);
				have = keep;
			}
		}
	}
	free(buf);
	close(memfd);
	fclose(maps);
	printf("scanned %llu bytes\n", scanned);
	for (size_t i = 0; i < np; i++)
		printf("%s: %lu hits\n", pt[i].label, pt[i].hits);
	sodium_memzero(pt, sizeof(pt));
	return scanned > 0 ? 0 : 1;
}
