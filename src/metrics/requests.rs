//! `outrider_requests_total{route,method,status}` without label hashing on the request path.
//!
//! A `CounterVec` would hash three label strings and take a read lock per request. Instead each
//! route owns a fixed table of atomics indexed by (folded method, status slot); the exporter
//! walks the tables at scrape time and emits the non-zero cells. Registered status codes get a
//! slot; any other code (a backend may send 299 or 599) lands in a small locked map, which
//! only such rare responses touch.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::Method;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, LabelPair, Metric, MetricFamily, MetricType};

/// Standard methods keep their name as the label; anything else is `OTHER`, so a client cannot
/// grow the label set.
pub const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

pub fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// The IANA-registered status codes (plus 499, "client closed", which proxies log), each with
/// a slot in the per-route table.
const SLOTTED: [u16; 64] = [
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 499, 500, 501, 502, 503, 504,
    505, 506, 507, 508, 510, 511, 0,
];
const SLOTS: usize = SLOTTED.len();

/// Status code → slot + 1 (0 = no slot), built at compile time.
static SLOT_OF: [u8; 600] = {
    let mut table = [0u8; 600];
    let mut i = 0;
    while i < SLOTTED.len() {
        let code = SLOTTED[i] as usize;
        if code > 0 {
            table[code] = (i + 1) as u8;
        }
        i += 1;
    }
    table
};

/// One route's counts.
pub struct StatusCounts {
    cells: Box<[AtomicU64]>,
    rare: Mutex<BTreeMap<(usize, u16), u64>>,
    /// Body bytes compression kept off the wire for this route (for `/stats`; the exported
    /// byte counters are per coding).
    bytes_saved: AtomicU64,
}

impl StatusCounts {
    fn new() -> StatusCounts {
        StatusCounts {
            cells: (0..METHODS.len() * SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            rare: Mutex::new(BTreeMap::new()),
            bytes_saved: AtomicU64::new(0),
        }
    }

    pub(crate) fn add_bytes_saved(&self, bytes: u64) {
        self.bytes_saved.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn bytes_saved(&self) -> u64 {
        self.bytes_saved.load(Ordering::Relaxed)
    }

    /// Counts one response. `status` 0 means none was sent (the client went away first).
    pub fn record(&self, method: usize, status: u16) {
        let slot = SLOT_OF.get(status as usize).copied().unwrap_or(0);
        if slot > 0 {
            self.cells[method * SLOTS + slot as usize - 1].fetch_add(1, Ordering::Relaxed);
        } else if let Ok(mut rare) = self.rare.lock() {
            *rare.entry((method, status)).or_insert(0) += 1;
        }
    }

    /// Every non-zero (method index, status, count).
    pub(crate) fn snapshot(&self) -> Vec<(usize, u16, u64)> {
        let mut out = Vec::new();
        for (i, cell) in self.cells.iter().enumerate() {
            let n = cell.load(Ordering::Relaxed);
            if n > 0 {
                out.push((i / SLOTS, SLOTTED[i % SLOTS], n));
            }
        }
        if let Ok(rare) = self.rare.lock() {
            out.extend(rare.iter().map(|(&(m, s), &n)| (m, s, n)));
        }
        out
    }

    /// (all responses, 5xx responses).
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.snapshot()
            .iter()
            .fold((0, 0), |(all, err), (_, status, n)| {
                (all + n, err + if *status >= 500 { *n } else { 0 })
            })
    }
}

/// The exporter and the per-route tables, keyed by route name so that counts carry over a
/// reload for routes that keep their name.
pub(crate) struct RequestsTotal {
    desc: Desc,
    routes: Mutex<HashMap<Arc<str>, Arc<StatusCounts>>>,
}

impl RequestsTotal {
    // Static metric definitions (constant names, help and labels, never input) fail only on an
    // invalid name, which the unit tests would catch at once.
    #[allow(clippy::expect_used)]
    pub(crate) fn new() -> RequestsTotal {
        let desc = Desc::new(
            "outrider_requests_total".into(),
            "Requests answered, by route, method (standard methods, else OTHER) and status (0: no response was sent)."
                .into(),
            vec!["route".into(), "method".into(), "status".into()],
            HashMap::new(),
        )
        .expect("static metric definition is valid");
        RequestsTotal {
            desc,
            routes: Mutex::new(HashMap::new()),
        }
    }

    /// The table for `route`, created on first use.
    pub(crate) fn route(&self, route: &Arc<str>) -> Arc<StatusCounts> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes
            .entry(route.clone())
            .or_insert_with(|| Arc::new(StatusCounts::new()))
            .clone()
    }

    /// Stops exporting routes that are gone.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.retain(|name, _| keep(name));
    }
}

impl Default for RequestsTotal {
    fn default() -> Self {
        RequestsTotal::new()
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

impl Collector for RequestsTotal {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let routes: Vec<(Arc<str>, Arc<StatusCounts>)> = {
            let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            routes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let mut metrics = Vec::new();
        for (route, counts) in routes {
            for (method, status, n) in counts.snapshot() {
                let mut counter = Counter::default();
                counter.set_value(n as f64);
                let mut m = Metric::default();
                m.set_label(vec![
                    label("method", METHODS[method]),
                    label("route", &route),
                    label("status", &status.to_string()),
                ]);
                m.set_counter(counter);
                metrics.push(m);
            }
        }
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::COUNTER);
        family.set_metric(metrics);
        vec![family]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slotted_code_has_its_own_cell() {
        for (i, code) in SLOTTED.iter().enumerate().filter(|(_, c)| **c > 0) {
            assert_eq!(SLOT_OF[*code as usize] as usize, i + 1);
        }
    }

    #[test]
    fn counts_land_where_they_belong() {
        let c = StatusCounts::new();
        c.record(method_index(&Method::GET), 200);
        c.record(method_index(&Method::GET), 200);
        c.record(method_index(&Method::from_bytes(b"PURGE").unwrap()), 404);
        c.record(method_index(&Method::POST), 599);
        c.record(method_index(&Method::GET), 0);
        let mut snap = c.snapshot();
        snap.sort();
        assert_eq!(snap, vec![(0, 0, 1), (0, 200, 2), (2, 599, 1), (9, 404, 1)]);
        assert_eq!(c.totals(), (5, 1));
    }
}
