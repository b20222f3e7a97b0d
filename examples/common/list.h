/* examples/common/list.h: an intrusive doubly linked list, for the live connections a server
 * must close on shutdown. Header-only; O(1) insert and remove, no allocation. */
#ifndef EX_LIST_H
#define EX_LIST_H

#include <stddef.h>

typedef struct ex_link {
    struct ex_link *prev;
    struct ex_link *next;
} ex_link_t;

/* The struct that holds member `member` at ptr. */
#define ex_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Make head an empty list (also fine for a node that is in no list). */
static inline void ex_list_init(ex_link_t *head) {
    head->prev = head->next = head;
}

static inline int ex_list_empty(const ex_link_t *head) {
    return head->next == head;
}

static inline void ex_list_push(ex_link_t *head, ex_link_t *node) {
    node->prev = head->prev;
    node->next = head;
    head->prev->next = node;
    head->prev = node;
}

/* Unlink node; it is left as an empty list, so removing twice is harmless. */
static inline void ex_list_remove(ex_link_t *node) {
    node->prev->next = node->next;
    node->next->prev = node->prev;
    ex_list_init(node);
}

#endif /* EX_LIST_H */
