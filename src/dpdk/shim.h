/* DPDK's fast-path API is `static inline`, so it has no symbol to link against.
 * These thin wrappers give Rust one symbol each; they compile to a call plus the
 * inlined body, so the cost is one direct call per burst, not per packet. */
#ifndef TACHYON_SHIM_H
#define TACHYON_SHIM_H
#include <stdint.h>
#include <rte_mbuf.h>

uint16_t tachyon_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t tachyon_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
void tachyon_pktmbuf_free(struct rte_mbuf *m);
void tachyon_pktmbuf_free_bulk(struct rte_mbuf **pkts, unsigned int n);
struct rte_mbuf *tachyon_pktmbuf_alloc(struct rte_mempool *mp);
int tachyon_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned int n);
char *tachyon_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
unsigned int tachyon_lcore_id(void);
uint64_t tachyon_rdtsc(void);
int tachyon_errno(void);
void tachyon_prefetch0(const void *p);
int tachyon_rx_queue_count(uint16_t port, uint16_t queue);
unsigned int tachyon_mempool_avail(const struct rte_mempool *mp);
unsigned int tachyon_mempool_in_use(const struct rte_mempool *mp);
void tachyon_rcu_quiescent(struct rte_rcu_qsbr *v, unsigned int thread_id);
void tachyon_rcu_online(struct rte_rcu_qsbr *v, unsigned int thread_id);
void tachyon_rcu_offline(struct rte_rcu_qsbr *v, unsigned int thread_id);
uint64_t tachyon_rcu_start(struct rte_rcu_qsbr *v);
int tachyon_rcu_check(struct rte_rcu_qsbr *v, uint64_t token, int wait);
#endif
