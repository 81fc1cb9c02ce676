//! `outrider_cache_objects`, `outrider_cache_size_bytes`, `outrider_cache_evictions_total` and
//! `outrider_cache_purged_total`: read from the store when Prometheus scrapes, so the request
//! path pays nothing for them and the counters are exactly the store's own.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, Metric, MetricFamily, MetricType};

/// What the store reports at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CacheFigures {
    pub(crate) objects: u64,
    pub(crate) bytes: u64,
    pub(crate) evictions: u64,
    pub(crate) purged: u64,
}

pub(crate) type CacheSource = Box<dyn Fn() -> CacheFigures + Send + Sync>;

pub(crate) struct CacheCollector {
    source: CacheSource,
    descs: [Desc; 4],
}

const FAMILIES: [(&str, &str, MetricType); 4] = [
    (
        "outrider_cache_objects",
        "Objects in the response cache (variants count separately).",
        MetricType::GAUGE,
    ),
    (
        "outrider_cache_size_bytes",
        "Bytes the response cache accounts for: bodies, headers, keys and per-object overhead.",
        MetricType::GAUGE,
    ),
    (
        "outrider_cache_evictions_total",
        "Objects evicted to stay within [cache] max_size (least recently used first).",
        MetricType::COUNTER,
    ),
    (
        "outrider_cache_purged_total",
        "Objects removed by purges (admin API, invalidation by unsafe methods).",
        MetricType::COUNTER,
    ),
];

impl CacheCollector {
    // Static metric definitions (constant names, help and labels, never input) fail only on an
    // invalid name, which the unit tests would catch at once.
    #[allow(clippy::expect_used)]
    pub(crate) fn new(source: CacheSource) -> CacheCollector {
        let descs = FAMILIES.map(|(name, help, _)| {
            Desc::new(name.into(), help.into(), Vec::new(), HashMap::new())
                .expect("static metric definition is valid")
        });
        CacheCollector { source, descs }
    }
}

impl Collector for CacheCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let figures = (self.source)();
        let values = [
            figures.objects,
            figures.bytes,
            figures.evictions,
            figures.purged,
        ];
        FAMILIES
            .iter()
            .zip(values)
            .map(|((name, help, kind), value)| {
                let mut metric = Metric::default();
                if *kind == MetricType::GAUGE {
                    let mut g = Gauge::default();
                    g.set_value(value as f64);
                    metric.set_gauge(g);
                } else {
                    let mut c = Counter::default();
                    c.set_value(value as f64);
                    metric.set_counter(c);
                }
                let mut family = MetricFamily::default();
                family.set_name((*name).to_string());
                family.set_help((*help).to_string());
                family.set_field_type(*kind);
                family.set_metric(vec![metric]);
                family
            })
            .collect()
    }
}
