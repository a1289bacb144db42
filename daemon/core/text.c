/* text.c — see text.h. */
#include <stdio.h>
#include <string.h>

#include "tokenseal.h"
#include "core/text.h"

int ts_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || len == 0 || (s[0] == '0' && len > 1))
		return -TS_E_INVALID_ARGS;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -TS_E_INVALID_ARGS;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*ret = v;
	return 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

void ts_text_trim(const char **text, size_t *len)
{
	while (*len > 0 && is_space((*text)[0])) {
		(*text)++;
		(*len)--;
	}
	while (*len > 0 && is_space((*text)[*len - 1]))
		(*len)--;
}

int ts_machine_id_valid(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= TS_MACHINE_ID_MAX &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == n;
}

int ts_machine_id_read(const char *path, char out[TS_MACHINE_ID_MAX + 1])
{
	char buf[128] = "";
	FILE *f = fopen(path, "re");
	int ok = f && fgets(buf, sizeof(buf), f);

	if (f)
		fclose(f);
	if (!ok)
		return -TS_E_IO;
	buf[strcspn(buf, "\n")] = '\0';
	if (!ts_machine_id_valid(buf))
		return -TS_E_INVALID_ARGS;
	memcpy(out, buf, strlen(buf) + 1);
	return 0;
}
