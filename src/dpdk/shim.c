#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include "shim.h"

uint16_t tachyon_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }

uint16_t tachyon_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }

void tachyon_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void tachyon_pktmbuf_free_bulk(struct rte_mbuf **pkts, unsigned int n) { rte_pktmbuf_free_bulk(pkts, n); }

struct rte_mbuf *tachyon_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int tachyon_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned int n)
{ return rte_pktmbuf_alloc_bulk(mp, pkts, n); }

char *tachyon_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

unsigned int tachyon_lcore_id(void) { return rte_lcore_id(); }

uint64_t tachyon_rdtsc(void) { return rte_rdtsc(); }

/* rte_errno is a per-thread variable: it must be read from C, never bound as a static. */
int tachyon_errno(void) { return rte_errno; }

void tachyon_prefetch0(const void *p) { rte_prefetch0(p); }

int tachyon_rx_queue_count(uint16_t port, uint16_t queue) { return rte_eth_rx_queue_count(port, queue); }

unsigned int tachyon_mempool_avail(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }

unsigned int tachyon_mempool_in_use(const struct rte_mempool *mp) { return rte_mempool_in_use_count(mp); }

void tachyon_rcu_quiescent(struct rte_rcu_qsbr *v, unsigned int thread_id) { rte_rcu_qsbr_quiescent(v, thread_id); }

void tachyon_rcu_online(struct rte_rcu_qsbr *v, unsigned int thread_id) { rte_rcu_qsbr_thread_online(v, thread_id); }

void tachyon_rcu_offline(struct rte_rcu_qsbr *v, unsigned int thread_id) { rte_rcu_qsbr_thread_offline(v, thread_id); }

uint64_t tachyon_rcu_start(struct rte_rcu_qsbr *v) { return rte_rcu_qsbr_start(v); }

int tachyon_rcu_check(struct rte_rcu_qsbr *v, uint64_t token, int wait) { return rte_rcu_qsbr_check(v, token, wait != 0); }
