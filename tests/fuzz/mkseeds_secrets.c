/* mkseeds_secrets.c — seeds for fuzz_secrets_store: collection files sealed with the fixture key (make fuzz-seeds). */
#include <stdio.h>
#include <sodium.h>

#include "secrets_fixture.h"

static void put(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void add_item(ss_collection *c, const char *label, const char *k, const char *v, const char *secret)
{
	ss_item *it = calloc(1, sizeof(*it));

	c->items = reallocarray(c->items, c->n_items + 1, sizeof(*c->items));
	if (!it || !c->items)
		exit(1);
	it->id = c->next_id++;
	it->created = it->modified = 1700000000u;
	it->label = strdup(label);
	it->content_type = strdup("text/plain");
	it->attrs = calloc(1, sizeof(*it->attrs));
	it->attrs[0].name = strdup(k);
	it->attrs[0].value = strdup(v);
	it->n_attrs = 1;
	c->items[c->n_items++] = it;
	if (ss_item_seal(c, it, (const uint8_t *)secret, strlen(secret)) < 0)
		exit(1);
}

int main(int argc, char **argv)
{
	ss_collection *c;
	uint8_t *out;
	size_t len;

	if (argc != 2 || sodium_init() < 0) {
		fprintf(stderr, "usage: mkseeds_secrets DIR\n");
		return 2;
	}
	if ((c = ss_collection_new("login", "Login")) == NULL || (c->key = sodium_malloc(SS_KEY_BYTES)) == NULL)
		return 1;
	memcpy(c->key, ts_fuzz_collection_key, SS_KEY_BYTES);
	c->created = c->modified = 1700000000u;
	memset(c->salt, 0x5a, sizeof(c->salt));
	c->wrapped = (uint8_t *)strdup("a stand-in for the wrapped key");
	c->wrapped_len = strlen((char *)c->wrapped);
	c->aliases = calloc(1, sizeof(char *));
	c->aliases[0] = strdup("default");
	c->n_aliases = 1;
	add_item(c, "mail", "service", "imap", "hunter2");
	if (ss_store_serialize(c, &out, &len) < 0)
		return 1;
	put(argv[1], "ok-one-item", out, len);
	free(out);
	add_item(c, "wifi", "ssid", "home", "correct horse battery staple");
	if (ss_store_serialize(c, &out, &len) < 0)
		return 1;
	put(argv[1], "ok-two-items", out, len);
	put(argv[1], "bad-truncated", out, len - 5);
	out[len - 3] ^= 1; /* a flipped byte in the last item's sealed part: parses, that item is dropped */
	put(argv[1], "bad-flipped", out, len);
	free(out);
	ss_collection_free(c);
	return 0;
}
