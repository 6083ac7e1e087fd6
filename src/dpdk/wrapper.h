/* Headers bindgen reads. Only what src/dpdk/ uses; the allowlist in build.rs trims the rest. */
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_malloc.h>
#include <rte_memory.h>
#include <rte_telemetry.h>
#include <rte_rcu_qsbr.h>
#include <rte_version.h>
#include "shim.h"
