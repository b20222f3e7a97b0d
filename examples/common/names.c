/* examples/common/names.c: resolve a command line's host once, at start (names.h).
 *
 * Servers and UDP tools resolve once, as nginx does for a listen address: the address they
 * bind does not follow later changes of the name. The lookup runs on a short-lived loop so the
 * resolver's thread (zev starts one on the first lookup and joins it at zev_loop_close) does
 * not stay idle beside the program's loop for its whole run.
 */
#include "names.h"

#include <errno.h>
#include <stdio.h>

struct lookup {
    int status;
    int done;
    zev_sockaddr_t addr;
};

static void on_resolved(zev_resolve_t *req, int status, const zev_sockaddr_t *addrs, size_t n) {
    struct lookup *l = req->data;
    l->done = 1;
    l->status = status;
    if (status == 0 && n > 0) l->addr = addrs[0]; /* the first, as Node's dns.lookup gives */
}

static int lookup_name(const char *host, int port, int family, zev_sockaddr_t *out) {
    zev_loop_t loop;
    int err = zev_loop_init(&loop);
    if (err < 0) return err;
    struct lookup l = {0};
    zev_resolve_t req = {.data = &l};
    err = zev_resolve(&loop, &req, host, port, family, on_resolved);
    if (err == 0) err = zev_run(&loop, ZEV_RUN_DEFAULT); /* the lookup keeps it running */
    if (err == 0 && !l.done) err = -EIO;                 /* zev_run returned without the answer */
    int close_err = zev_loop_close(&loop);
    if (err < 0) return err;
    if (close_err < 0) return close_err;
    if (l.status < 0) return l.status;
    *out = l.addr;
    return 0;
}

int ex_resolve(const char *host, int port, int family, zev_sockaddr_t *out) {
    int numeric = zev_ip_family(host);
    if (numeric == 0) return lookup_name(host, port, family, out);
    if (family != 0 && numeric != family) return -ZEV_EAI_NONAME; /* as getaddrinfo says it */
    return zev_addr_parse(out, host, port);
}

int ex_resolve_text(const char *host, int family, char *text) {
    zev_sockaddr_t addr;
    int err = ex_resolve(host, 0, family, &addr);
    zev_addr_info_t info;
    if (err == 0) err = zev_addr_info(&addr, &info);
    if (err < 0) return err;
    snprintf(text, ZEV_ADDR_TEXT_MAX, "%s", info.address);
    return 0;
}
