/* list.h - intrusive circular doubly-linked lists with a sentinel head.
 *
 * Used for wait lists and timer-wheel slots: O(1) insert and unlink, no
 * allocation, and "is this node still linked?" answered by the node itself
 * (an unlinked node points to itself). Not thread-safe: the owner's lock
 * protects every list.
 */
#ifndef WF_LIST_H
#define WF_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct wf__link {
    struct wf__link *next, *prev;
} wf__link;

#define wf__container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static inline void wf__list_init(wf__link *l)
{
    l->next = l->prev = l;
}

static inline bool wf__list_empty(const wf__link *l)
{
    return l->next == l;
}

/* A node that is not on any list points to itself. */
static inline bool wf__link_linked(const wf__link *n)
{
    return n->next != n;
}

static inline void wf__list_push_back(wf__link *head, wf__link *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void wf__list_push_front(wf__link *head, wf__link *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

static inline void wf__list_unlink(wf__link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

static inline wf__link *wf__list_pop_front(wf__link *head)
{
    wf__link *n = head->next;
    if (n == head)
        return NULL;
    wf__list_unlink(n);
    return n;
}

/* Move every node of `from` to the back of `to`; `from` ends empty. */
static inline void wf__list_splice_back(wf__link *to, wf__link *from)
{
    if (wf__list_empty(from))
        return;
    wf__link *first = from->next, *last = from->prev;
    first->prev = to->prev;
    to->prev->next = first;
    last->next = to;
    to->prev = last;
    wf__list_init(from);
}

#endif
