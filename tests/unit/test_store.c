/* test_store.c — the vault file store: atomic saves keep the previous generation, bounded loads, listing, crashes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tokenseal.h"
#include "core/buf.h"
#include "core/vault.h"
#include "store.h"

static char dir[256];

static int mk_tmpdir(void **state)
{
	char base[200];

	snprintf(base, sizeof(base), "%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	snprintf(dir, sizeof(dir), "%s/ts-store-XXXXXX", base);
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int rm_tmpdir(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[512];

	if (d) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			if (unlink(p) < 0)
				rmdir(p);
		}
		closedir(d);
	}
	rmdir(dir);
	return 0;
}

static void path(char *out, size_t n, const char *file)
{
	snprintf(out, n, "%s/%s", dir, file);
}

static void write_file(const char *file, const void *data, size_t len)
{
	char p[512];
	FILE *f;

	path(p, sizeof(p), file);
	f = fopen(p, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int exists(const char *file)
{
	char p[512];
	struct stat st;

	path(p, sizeof(p), file);
	return lstat(p, &st) == 0;
}

static void expect_load(const char *name, const char *want)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_store_load(dir, name, &b), 0);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
}

static void init_creates_a_private_directory(void **state)
{
	char sub[512];
	struct stat st;

	path(sub, sizeof(sub), "state");
	assert_int_equal(ts_store_init(sub), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(ts_store_init(sub), 0);   /* already there */
	rmdir(sub);
	write_file("plain", "x", 1);
	path(sub, sizeof(sub), "plain");
	assert_int_equal(ts_store_init(sub), -TS_E_IO);
}

static void save_then_load_round_trips_with_mode_0600(void **state)
{
	char p[512];
	struct stat st;

	assert_int_equal(ts_store_save(dir, "alice", (const uint8_t *)"generation-1", 12), 0);
	expect_load("alice", "generation-1");
	path(p, sizeof(p), "alice.vault");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* No backup before there was a previous generation, no temp left behind. */
	assert_false(exists("alice.vault.bak"));
	{
		_ts_cleanup_buf_ ts_buf b = { 0 };

		assert_int_equal(ts_store_load_backup(dir, "alice", &b), -TS_E_NO_SUCH_VAULT);
	}
}

static void each_save_keeps_the_previous_generation_as_bak(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_store_save(dir, "alice", (const uint8_t *)"gen-1", 5), 0);
	assert_int_equal(ts_store_save(dir, "alice", (const uint8_t *)"gen-2", 5), 0);
	expect_load("alice", "gen-2");
	assert_int_equal(ts_store_load_backup(dir, "alice", &b), 0);
	assert_memory_equal(b.data, "gen-1", 5);
	assert_int_equal(ts_store_save(dir, "alice", (const uint8_t *)"gen-3", 5), 0);
	ts_buf_free(&b);
	assert_int_equal(ts_store_load_backup(dir, "alice", &b), 0);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "gen-2", 5);
	expect_load("alice", "gen-3");
}

static void names_are_validated_before_touching_the_disk(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };

	assert_int_equal(ts_store_save(dir, "../escape", (const uint8_t *)"x", 1), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_store_save(dir, ".hidden", (const uint8_t *)"x", 1), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_store_load(dir, "a/b", &b), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_store_remove(dir, ""), -TS_E_INVALID_ARGS);
	assert_int_equal(ts_store_load(dir, "nobody", &b), -TS_E_NO_SUCH_VAULT);
	assert_int_equal(ts_store_remove(dir, "nobody"), -TS_E_NO_SUCH_VAULT);
}

static void oversized_file_is_refused_and_left_alone(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	char p[512];
	struct stat before, after;
	int fd;

	path(p, sizeof(p), "big.vault");
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)TS_VAULT_FILE_MAX + 1), 0);
	close(fd);
	assert_int_equal(stat(p, &before), 0);
	assert_int_equal(ts_store_load(dir, "big", &b), -TS_E_LIMIT);
	assert_int_equal(b.len, 0);
	assert_int_equal(stat(p, &after), 0);
	assert_true(after.st_size == before.st_size && after.st_mtime == before.st_mtime);
	uint8_t *data = calloc(1, TS_VAULT_FILE_MAX + 1);
	assert_int_equal(ts_store_save(dir, "big2", data, TS_VAULT_FILE_MAX + 1), -TS_E_LIMIT);
	assert_false(exists("big2.vault"));
	free(data);
}

static void garbage_and_truncated_files_load_but_fail_to_parse_unmodified(void **state)
{
	static const uint8_t garbage[] = "this is not a vault";
	_ts_cleanup_buf_ ts_buf file = { 0 };
	_ts_cleanup_buf_ ts_buf b = { 0 };
	uint8_t kek[TS_KEY_BYTES] = { 1 };
	ts_vault *v = NULL, *w = NULL;

	assert_int_equal(ts_vault_create(&v, "carol", 1, 1), 0);
	assert_int_equal(ts_vault_add_protector(v, "recovery", "", kek, NULL, 0, 1, NULL), 0);
	assert_int_equal(ts_vault_serialize(v, &file), 0);

	write_file("garbage.vault", garbage, sizeof(garbage));
	assert_int_equal(ts_store_load(dir, "garbage", &b), 0);
	assert_int_equal(ts_vault_parse(b.data, b.len, &w), -TS_E_CORRUPT);
	ts_buf_free(&b);

	write_file("carol.vault", file.data, file.len / 2);
	assert_int_equal(ts_store_load(dir, "carol", &b), 0);
	assert_int_equal(b.len, file.len / 2);
	assert_int_equal(ts_vault_parse(b.data, b.len, &w), -TS_E_CORRUPT);
	ts_buf_free(&b);
	/* Loading changed nothing on disk. */
	assert_int_equal(ts_store_load(dir, "carol", &b), 0);
	assert_int_equal(b.len, file.len / 2);
	assert_memory_equal(b.data, file.data, b.len);
	assert_false(exists("carol.vault.bak"));
	ts_buf_free(&b);

	write_file("empty.vault", "", 0);
	assert_int_equal(ts_store_load(dir, "empty", &b), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(ts_vault_parse(b.data ? b.data : (const uint8_t *)"", 0, &w), -TS_E_CORRUPT);
	ts_vault_free(v);
}

static void symlinks_and_directories_are_not_followed(void **state)
{
	_ts_cleanup_buf_ ts_buf b = { 0 };
	char p[512], target[512];

	write_file("secret-target", "not yours", 9);
	path(target, sizeof(target), "secret-target");
	path(p, sizeof(p), "link.vault");
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(ts_store_load(dir, "link", &b), -TS_E_IO);
	path(p, sizeof(p), "adir.vault");
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(ts_store_load(dir, "adir", &b), -TS_E_IO);
}

/*
 * A name is taken by any entry (a file that cannot be loaded, a symlink, a
 * directory) and by a backup alone; out of descriptors is no answer either
 * way (CreateVault once took it for "exists").
 */
static void a_name_is_taken_by_any_entry_and_out_of_fds_says_neither(void **state)
{
	struct rlimit old, low;
	char p[512], missing[512];
	int k;

	write_file("garbage.vault", "not a vault", 11);
	path(p, sizeof(p), "link.vault");
	assert_int_equal(symlink("/nonexistent", p), 0);
	path(p, sizeof(p), "adir.vault");
	assert_int_equal(mkdir(p, 0700), 0);
	write_file("gone.vault.bak", "x", 1);
	assert_int_equal(ts_store_name_taken(dir, "garbage", 0), 1);
	assert_int_equal(ts_store_name_taken(dir, "link", 0), 1);
	assert_int_equal(ts_store_name_taken(dir, "adir", 0), 1);
	assert_int_equal(ts_store_name_taken(dir, "gone", 0), 0);
	assert_int_equal(ts_store_name_taken(dir, "gone", 1), 1);
	assert_int_equal(ts_store_name_taken(dir, "free", 0), 0);
	assert_int_equal(ts_store_name_taken(dir, "free", 1), 0);
	assert_int_equal(ts_store_name_taken(dir, "../x", 0), -TS_E_INVALID_ARGS);
	path(missing, sizeof(missing), "no-such-owner");
	assert_int_equal(ts_store_name_taken(missing, "garbage", 0), 0);

	/* Every descriptor below the lowest free one is open: with that as the limit, open fails (EMFILE). */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	assert_true((k = dup(0)) >= 0);
	close(k);
	low = old;
	low.rlim_cur = (rlim_t)k;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	int taken = ts_store_name_taken(dir, "free", 0), taken_bad = ts_store_name_taken(dir, "garbage", 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(taken, -TS_E_IO);
	assert_int_equal(taken_bad, -TS_E_IO);
}

struct names { char list[16][80]; int n; int stop_after; };

static int collect(void *ud, const char *name)
{
	struct names *ns = ud;

	if (ns->stop_after && ns->n == ns->stop_after)
		return -TS_E_BUSY;
	snprintf(ns->list[ns->n++], sizeof(ns->list[0]), "%s", name);
	return 0;
}

static void list_returns_sorted_valid_names_and_sweeps_stale_temps(void **state)
{
	struct names ns = { .n = 0 };
	char p[512];

	assert_int_equal(ts_store_save(dir, "zed", (const uint8_t *)"z", 1), 0);
	assert_int_equal(ts_store_save(dir, "bob", (const uint8_t *)"b", 1), 0);
	assert_int_equal(ts_store_save(dir, "bob", (const uint8_t *)"b2", 2), 0);   /* makes bob.vault.bak */
	assert_int_equal(ts_store_save(dir, "alice", (const uint8_t *)"a", 1), 0);
	write_file("notes.txt", "x", 1);
	write_file(".hidden.vault", "x", 1);
	write_file("bad name.vault", "x", 1);
	write_file(".vault", "x", 1);
	write_file(".bob.vault.tmp.AbC123", "stale", 5);
	write_file(".alice.vault.tmp.zzzzzz", "stale", 5);
	write_file(".alice.vault.tmp.toolong1", "keep", 4);   /* not our pattern: left alone */
	path(p, sizeof(p), "dir.vault");
	assert_int_equal(mkdir(p, 0700), 0);

	assert_int_equal(ts_store_list(dir, collect, &ns), 0);
	assert_int_equal(ns.n, 3);
	assert_string_equal(ns.list[0], "alice");
	assert_string_equal(ns.list[1], "bob");
	assert_string_equal(ns.list[2], "zed");
	assert_false(exists(".bob.vault.tmp.AbC123"));
	assert_false(exists(".alice.vault.tmp.zzzzzz"));
	assert_true(exists(".alice.vault.tmp.toolong1"));
	assert_true(exists("notes.txt"));
	assert_true(exists("bob.vault.bak"));

	/* A callback error stops the walk and is returned. */
	memset(&ns, 0, sizeof(ns));
	ns.stop_after = 1;
	assert_int_equal(ts_store_list(dir, collect, &ns), -TS_E_BUSY);
	assert_int_equal(ns.n, 1);
}

static void remove_deletes_the_vault_and_its_backup(void **state)
{
	assert_int_equal(ts_store_save(dir, "dave", (const uint8_t *)"1", 1), 0);
	assert_int_equal(ts_store_save(dir, "dave", (const uint8_t *)"2", 1), 0);
	assert_true(exists("dave.vault.bak"));
	assert_int_equal(ts_store_remove(dir, "dave"), 0);
	assert_false(exists("dave.vault"));
	assert_false(exists("dave.vault.bak"));
}

/*
 * A writer killed with SIGKILL at arbitrary moments: NAME.vault is always a
 * complete generation, the backup too, and listing sweeps the temp files.
 */
static void killed_writer_leaves_old_or_new_never_broken(void **state)
{
	char gen[2][4096];
	struct names ns = { .n = 0 };
	DIR *d;
	struct dirent *de;

	memset(gen[0], 'A', sizeof(gen[0]));
	memset(gen[1], 'B', sizeof(gen[1]));
	assert_int_equal(ts_store_save(dir, "erin", (const uint8_t *)gen[0], sizeof(gen[0])), 0);
	for (int round = 0; round < 40; round++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			for (int i = 0;; i++)
				if (ts_store_save(dir, "erin", (const uint8_t *)gen[i & 1], sizeof(gen[0])) < 0)
					_exit(1);
		}
		struct timespec ts = { 0, 200000 + (long)(round % 7) * 137000 };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		for (int which = 0; which < 2; which++) {
			_ts_cleanup_buf_ ts_buf b = { 0 };

			if (which == 0)
				assert_int_equal(ts_store_load(dir, "erin", &b), 0);
			else if (ts_store_load_backup(dir, "erin", &b) == -TS_E_NO_SUCH_VAULT)
				continue;
			assert_int_equal(b.len, sizeof(gen[0]));
			assert_true(memcmp(b.data, gen[0], b.len) == 0 || memcmp(b.data, gen[1], b.len) == 0);
		}
	}
	assert_int_equal(ts_store_list(dir, collect, &ns), 0);
	assert_int_equal(ns.n, 1);
	d = opendir(dir);
	while ((de = readdir(d)) != NULL)
		assert_null(strstr(de->d_name, ".tmp."));
	closedir(d);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, mk_tmpdir, rm_tmpdir)
	const struct CMUnitTest tests[] = {
		T(init_creates_a_private_directory),
		T(save_then_load_round_trips_with_mode_0600),
		T(each_save_keeps_the_previous_generation_as_bak),
		T(names_are_validated_before_touching_the_disk),
		T(oversized_file_is_refused_and_left_alone),
		T(garbage_and_truncated_files_load_but_fail_to_parse_unmodified),
		T(symlinks_and_directories_are_not_followed),
		T(a_name_is_taken_by_any_entry_and_out_of_fds_says_neither),
		T(list_returns_sorted_valid_names_and_sweeps_stale_temps),
		T(remove_deletes_the_vault_and_its_backup),
		T(killed_writer_leaves_old_or_new_never_broken),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
