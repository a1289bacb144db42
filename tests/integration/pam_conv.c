/* pam_conv.c — a PAM application whose conversation answers and then reports a failure (built by hardening-pam-conv.sh). */
/*
 *   pam_conv SERVICE USER MODE [SECRET_FILE]
 *
 * Runs pam_authenticate. The conversation answers every prompt with the
 * first line of SECRET_FILE (or a dummy secret) in a malloc()ed response,
 * then returns: MODE "ok" PAM_SUCCESS, "fail" PAM_CONV_ERR, "again"
 * PAM_CONV_AGAIN. Linux-PAM's pam_prompt hands the response to the module
 * even when the conversation fails, so the module owns it on every path: a
 * leak-checker (valgrind, LeakSanitizer) sees it if the module drops it.
 * Prints "pam_authenticate: N (TEXT)" and exits 0 if pam_authenticate ran.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <security/pam_appl.h>

static char secret[1100] = "AAAAA-BBBBB-CCCCC-DDDDD";
static int conv_result;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	struct pam_response *r = calloc((size_t)n, sizeof(*r));

	(void)data;
	if (!r)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++)
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
			r[i].resp = strdup(secret);
	*resp = r;
	return conv_result;
}

int main(int argc, char **argv)
{
	struct pam_conv c = { conv, NULL };
	pam_handle_t *pamh = NULL;
	int pr;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: pam_conv SERVICE USER ok|fail|again [SECRET_FILE]\n");
		return 2;
	}
	if (strcmp(argv[3], "ok") == 0)
		conv_result = PAM_SUCCESS;
	else if (strcmp(argv[3], "fail") == 0)
		conv_result = PAM_CONV_ERR;
	else if (strcmp(argv[3], "again") == 0)
		conv_result = PAM_CONV_AGAIN;
	else
		return 2;
	if (argc == 5) {
		FILE *f = fopen(argv[4], "r");

		if (!f || !fgets(secret, sizeof(secret), f)) {
			perror(argv[4]);
			return 2;
		}
		fclose(f);
		secret[strcspn(secret, "\n")] = '\0';
	}
	if ((pr = pam_start(argv[1], argv[2], &c, &pamh)) != PAM_SUCCESS) {
		fprintf(stderr, "pam_start: %d\n", pr);
		return 1;
	}
	pr = pam_authenticate(pamh, 0);
	printf("pam_authenticate: %d (%s)\n", pr, pam_strerror(pamh, pr));
	pam_end(pamh, pr);
	return 0;
}
