/* test_anchor.c — generation anchors: saved and read back, raised and lowered, anything not an anchor refused, temps swept. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "tokenseal.h"
#include "anchor.h"
#include "core/vault.h"

static char dir[256];
static ts_vault vault = { .name = "mail", .owner_uid = 1000,
                          .id = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac,
                                  0xad, 0xae, 0xaf } };
#define ID_FILE "generations/a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"

static int rm_tree(const char *p)
{
	DIR *d = opendir(p);
	struct dirent *de;
	char q[512];

	if (!d)
		return unlink(p);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(q, sizeof(q), "%s/%s", p, de->d_name);
		rm_tree(q);
	}
	closedir(d);
	return rmdir(p);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "%s/ts-anchor-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	rm_tree(dir);
	return 0;
}

static void put(const char *file, const char *text)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	assert_non_null(f = fopen(p, "w"));
	fputs(text, f);
	fclose(f);
}

static void each_save_replaces_the_anchor_up_or_down(void **state)
{
	uint64_t gen = 0;
	struct stat st;
	char p[512];

	assert_int_equal(ts_anchor_load(dir, vault.id, &gen), -TS_E_NO_SUCH_VAULT);
	assert_int_equal(ts_anchor_save(dir, &vault, 7), 0);
	assert_int_equal(ts_anchor_load(dir, vault.id, &gen), 0);
	assert_true(gen == 7);
	assert_int_equal(ts_anchor_save(dir, &vault, 18446744073709551615u), 0);
	assert_int_equal(ts_anchor_load(dir, vault.id, &gen), 0);
	assert_true(gen == 18446744073709551615u);
	/* Lowering is the caller's decision (--accept-rollback). */
	assert_int_equal(ts_anchor_save(dir, &vault, 3), 0);
	assert_int_equal(ts_anchor_load(dir, vault.id, &gen), 0);
	assert_true(gen == 3);
	snprintf(p, sizeof(p), "%s/generations", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_true((st.st_mode & 0777) == 0700);
	snprintf(p, sizeof(p), "%s/" ID_FILE, dir);
	assert_int_equal(stat(p, &st), 0);
	assert_true((st.st_mode & 0777) == 0600);
	assert_int_equal(ts_anchor_save(dir, &vault, 0), -TS_E_INVALID_ARGS);
}

static void anything_but_an_anchor_is_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"tokenseal-anchor v2\ngeneration 1\nowner 1000\nname mail\n",
		"tokenseal-anchor v1\ngeneration 01\nowner 1000\nname mail\n",
		"tokenseal-anchor v1\ngeneration 0\nowner 1000\nname mail\n",
		"tokenseal-anchor v1\ngeneration -1\nowner 1000\nname mail\n",
		"tokenseal-anchor v1\ngeneration 18446744073709551616\nowner 1000\nname mail\n",
		"tokenseal-anchor v1\ngeneration 5\nowner 4294967295\nname mail\n",
		"tokenseal-anchor v1\ngeneration 5\nowner 1000\nname mail",
		"tokenseal-anchor v1\ngeneration 5\nowner 1000\nname mail\n\n",
		"tokenseal-anchor v1\ngeneration 5\nowner 1000\nname .mail\n",
		"tokenseal-anchor v1\ngeneration 5\nowner 1000\nname \n",
		"tokenseal-anchor v1\nowner 1000\ngeneration 5\nname mail\n",
		"tokenseal-anchor v1\ngeneration  5\nowner 1000\nname mail\n",
		"tokenseal-anchor v1\ngeneration 5 \nowner 1000\nname mail\n",
	};
	char big[400];
	uint64_t gen = 99;

	assert_int_equal(ts_anchor_save(dir, &vault, 5), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put(ID_FILE, bad[i]);
		assert_int_equal(ts_anchor_load(dir, vault.id, &gen), -TS_E_CORRUPT);
		assert_true(gen == 99);
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "tokenseal-anchor v1\ngeneration 5\nowner 1000\nname ", 50);
	put(ID_FILE, big);
	assert_int_equal(ts_anchor_load(dir, vault.id, &gen), -TS_E_CORRUPT);
	/* A symlink in place of the anchor is not followed. */
	{
		char p[512], t[512];

		snprintf(p, sizeof(p), "%s/" ID_FILE, dir);
		snprintf(t, sizeof(t), "%s/elsewhere", dir);
		put("elsewhere", "tokenseal-anchor v1\ngeneration 5\nowner 1000\nname mail\n");
		assert_int_equal(unlink(p), 0);
		assert_int_equal(symlink(t, p), 0);
		assert_int_equal(ts_anchor_load(dir, vault.id, &gen), -TS_E_CORRUPT);
	}
	/* The next save renames over the link itself, never writes through it. */
	assert_int_equal(ts_anchor_save(dir, &vault, 6), 0);
	assert_int_equal(ts_anchor_load(dir, vault.id, &gen), 0);
	assert_true(gen == 6);
}

static void stale_temps_are_swept_and_anchors_kept(void **state)
{
	char p[512];
	uint64_t gen = 0;

	assert_int_equal(ts_anchor_save(dir, &vault, 9), 0);
	put("generations/.a0a1a2a3a4a5a6a7a8a9aaabacadaeaf.tmp.Ab12Cd", "half");
	put("generations/notes", "the administrator's");
	ts_anchor_sweep(dir);
	snprintf(p, sizeof(p), "%s/generations/.a0a1a2a3a4a5a6a7a8a9aaabacadaeaf.tmp.Ab12Cd", dir);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/generations/notes", dir);
	assert_int_equal(access(p, F_OK), 0);
	assert_int_equal(ts_anchor_load(dir, vault.id, &gen), 0);
	assert_true(gen == 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(each_save_replaces_the_anchor_up_or_down, setup, teardown),
		cmocka_unit_test_setup_teardown(anything_but_an_anchor_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(stale_temps_are_swept_and_anchors_kept, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
