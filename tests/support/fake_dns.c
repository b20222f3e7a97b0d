/* tests/support/fake_dns.c: see fake_dns.h. */
#include "fake_dns.h"

#include "sys_fault.h"
#include "zev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_int calls;
static atomic_int blocked;
static atomic_int frees;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t released_cond = PTHREAD_COND_INITIALIZER;
static bool released;

/* One node holding its own address, freed with free_answer. */
struct node {
    struct addrinfo ai;
    struct sockaddr_storage ss;
};

static struct addrinfo *node_of(const char *text, int want_family) {
    struct node *n = calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->ai.ai_socktype = SOCK_STREAM;
    n->ai.ai_protocol = IPPROTO_TCP;
    n->ai.ai_addr = (struct sockaddr *)&n->ss;
    if (strchr(text, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&n->ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, text, &a->sin6_addr);
        n->ai.ai_family = AF_INET6;
        n->ai.ai_addrlen = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&n->ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, text, &a->sin_addr);
        n->ai.ai_family = AF_INET;
        n->ai.ai_addrlen = sizeof(*a);
    }
    if (want_family != AF_UNSPEC && want_family != n->ai.ai_family) {
        free(n);
        return NULL;
    }
    return &n->ai;
}

static void free_answer(struct addrinfo *res) {
    while (res) {
        struct addrinfo *next = res->ai_next;
        free(res); /* ai is the first member of its node */
        res = next;
    }
    atomic_fetch_add(&frees, 1);
}

/* A list of the texts (NULL-terminated) that match the family; EAI_NONAME if none does. */
static int answer(const char *const *texts, int family, struct addrinfo **res) {
    struct addrinfo *head = NULL, **tail = &head;
    for (; *texts; texts++) {
        struct addrinfo *ai = node_of(*texts, family);
        if (!ai) continue;
        *tail = ai;
        tail = &ai->ai_next;
    }
    if (!head) return EAI_NONAME;
    *res = head;
    return 0;
}

static void wait_released(void) {
    atomic_fetch_add(&blocked, 1);
    pthread_mutex_lock(&lock);
    while (!released) pthread_cond_wait(&released_cond, &lock);
    pthread_mutex_unlock(&lock);
    atomic_fetch_sub(&blocked, 1);
}

static int fake_getaddrinfo(const char *host, const struct addrinfo *hints,
                            struct addrinfo **res) {
    atomic_fetch_add(&calls, 1);
    int family = hints ? hints->ai_family : AF_UNSPEC;
    static const char *const dual[] = {"::1", "127.0.0.1", NULL};
    static const char *const v4[] = {"127.0.0.1", NULL};
    static const char *const v6[] = {"::1", NULL};
    static const char *const four[] = {"::1", "::1", "127.0.0.1", "127.0.0.1", NULL};
    if (strcmp(host, "dual.zev.test") == 0) return answer(dual, family, res);
    if (strcmp(host, "v4.zev.test") == 0) return answer(v4, family, res);
    if (strcmp(host, "v6.zev.test") == 0) return answer(v6, family, res);
    if (strcmp(host, "four.zev.test") == 0) return answer(four, family, res);
    if (strcmp(host, "again.zev.test") == 0) return EAI_AGAIN;
    if (strcmp(host, "fail.zev.test") == 0) return EAI_FAIL;
    if (strcmp(host, "memory.zev.test") == 0) return EAI_MEMORY;
    if (strcmp(host, "system.zev.test") == 0) {
        errno = EMFILE;
        return EAI_SYSTEM;
    }
    if (strcmp(host, "block.zev.test") == 0) {
        wait_released();
        return answer(v4, family, res);
    }
    return EAI_NONAME;
}

bool zt_fake_dns_install(void) {
#ifdef ZEV_FAULT_INJECTION
    zev_fault_set_getaddrinfo(fake_getaddrinfo, free_answer);
    return true;
#else
    (void)fake_getaddrinfo;
    (void)free_answer;
    return false;
#endif
}

int zt_fake_dns_calls(void) {
    return atomic_load(&calls);
}

int zt_fake_dns_blocked(void) {
    return atomic_load(&blocked);
}

int zt_fake_dns_frees(void) {
    return atomic_load(&frees);
}

static void nap_ms(int ms) {
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

bool zt_fake_dns_wait_blocked(int n, int ms) {
    for (int waited = 0; atomic_load(&blocked) < n; waited += 2) {
        if (waited >= ms) return false;
        nap_ms(2);
    }
    return true;
}

void zt_fake_dns_release(void) {
    pthread_mutex_lock(&lock);
    released = true;
    pthread_cond_broadcast(&released_cond);
    pthread_mutex_unlock(&lock);
}

bool zt_fake_dns_wait_frees(int n, int ms) {
    for (int waited = 0; atomic_load(&frees) < n; waited += 2) {
        if (waited >= ms) return false;
        nap_ms(2);
    }
    return true;
}

bool zt_fake_dns_close_loop_and_wait_frees(zev_loop_t *loop, int n, int ms) {
    if (zev_loop_close(loop) != 0) return false;
    bool freed = zt_fake_dns_wait_frees(n, ms);
    return zev_loop_init(loop) == 0 && freed;
}

bool zt_hosts_has(const char *name, const char *addr) {
    FILE *f = fopen("/etc/hosts", "r");
    if (!f) return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *save = NULL;
        char *first = strtok_r(line, " \t\r\n", &save);
        if (!first || strcmp(first, addr) != 0) continue;
        for (char *w; (w = strtok_r(NULL, " \t\r\n", &save));) {
            if (strcmp(w, name) == 0) found = true;
        }
    }
    fclose(f);
    return found;
}
