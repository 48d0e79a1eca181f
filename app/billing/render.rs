//! Statements as CSV and JSON, byte for byte the same for the same statement.
//!
//! Fixed column order, fixed decimals (quantities 6 places, coverage 6, money 2), all rounded
//! half to even from exact integers, times in RFC 3339 UTC, `\n` line endings, no maps with
//! unstable order. JSON numbers are written as those same fixed decimals (not via `f64`), so
//! JSON and CSV agree digit for digit; strings are escaped by `serde_json`.
//!
//! The CSV's first column, `line`, is `row` for rows and `total` for the one totals line at
//! the end (key columns empty), so an importer can keep or drop totals with one filter. Cost
//! columns are always present and empty without a price book; `unpriced` lists resources used
//! but not priced, separated by `;`. After them: where CPU came from (`cpu_source`:
//! `counter`, `rate` or `counter+rate`) and GPU efficiency (measured use ÷ allocation, shown,
//! not billed; empty where nothing was allocated). Statements by node end with capacity.

use chrono::{DateTime, SecondsFormat};

use super::decimal::fixed;
use super::prices::Resource;
use super::quantities::{
    Quantities, Triple, BYTES_PER_GIB, BYTE_NS_PER_GIB_HOUR, GPU_NS_PER_GPU_HOUR,
    MCORE_NS_PER_CORE_HOUR, PERCENT_NS_PER_GPU_HOUR,
};
use super::statement::{Line, Statement};

const QUANTITY_PLACES: u32 = 6;
/// Nanoseconds in an hour, for `observed_hours`.
const NS_PER_HOUR: u128 = 3_600_000_000_000;

enum Cell {
    Text(String),
    /// A number already formatted as a fixed decimal.
    Num(String),
    Null,
    List(Vec<String>),
}

/// Names of the value columns after `from`, `to` and the key columns.
const VALUE_COLUMNS: [&str; 32] = [
    "cpu_usage_core_hours",
    "cpu_request_core_hours",
    "cpu_max_core_hours",
    "cpu_billed_core_hours",
    "memory_usage_gib_hours",
    "memory_request_gib_hours",
    "memory_max_gib_hours",
    "memory_billed_gib_hours",
    "gpu_hours",
    "network_in_gib",
    "network_out_gib",
    "ephemeral_storage_usage_gib_hours",
    "ephemeral_storage_request_gib_hours",
    "ephemeral_storage_max_gib_hours",
    "ephemeral_storage_billed_gib_hours",
    "coverage",
    "observed_hours",
    "currency",
    "cost_cpu",
    "cost_memory",
    "cost_gpu",
    "cost_ephemeral_storage",
    "cost_network_in",
    "cost_network_out",
    "cost_total",
    "unpriced",
    "cpu_source",
    "gpu_busy_hours",
    "gpu_utilization",
    "gpu_memory_used_gib_hours",
    "gpu_memory_total_gib_hours",
    "gpu_memory_utilization",
];

/// Columns after [`VALUE_COLUMNS`] in statements by node (capacity, allocated = requests).
const CAPACITY_COLUMNS: [&str; 6] = [
    "cpu_capacity_core_hours",
    "cpu_idle_core_hours",
    "cpu_overcommit_core_hours",
    "memory_capacity_gib_hours",
    "memory_idle_gib_hours",
    "memory_overcommit_gib_hours",
];

/// The value columns of `st`: capacity columns only when it carries capacity.
fn value_columns(st: &Statement) -> impl Iterator<Item = &'static str> {
    let capacity: &[&str] = if st.totals.capacity.is_some() {
        &CAPACITY_COLUMNS
    } else {
        &[]
    };
    VALUE_COLUMNS.iter().chain(capacity).copied()
}

fn time(t: i64) -> String {
    DateTime::from_timestamp_nanos(t).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn qty(n: u128, per: u128) -> Cell {
    Cell::Num(fixed(n, per, QUANTITY_PLACES))
}

/// `used ÷ allocated` to 6 places; empty where nothing was allocated.
fn ratio(used: u128, allocated: u128) -> Cell {
    if allocated == 0 {
        Cell::Null
    } else {
        Cell::Num(fixed(used, allocated, QUANTITY_PLACES))
    }
}

/// GPU busy time and memory, and each as a share of what was allocated: busy percent-ns over
/// 100 % of the GPUs allocated (`nvidia.com/gpu` × time), memory used over the GPUs' memory.
fn gpu_efficiency(q: &Quantities) -> [Cell; 5] {
    [
        qty(q.gpu_util, PERCENT_NS_PER_GPU_HOUR),
        ratio(q.gpu_util, q.gpu.saturating_mul(100)),
        qty(q.gpu_memory_used, BYTE_NS_PER_GIB_HOUR),
        qty(q.gpu_memory_total, BYTE_NS_PER_GIB_HOUR),
        ratio(q.gpu_memory_used, q.gpu_memory_total),
    ]
}

fn cents(c: Option<u128>) -> Cell {
    c.map_or(Cell::Null, |c| Cell::Num(fixed(c, 100, 2)))
}

fn values(st: &Statement, l: &Line) -> Vec<Cell> {
    let q = &l.quantities;
    let triple = |t: &Triple, per: u128, mode| {
        [
            qty(t.usage, per),
            qty(t.request, per),
            qty(t.max, per),
            qty(t.billed(mode), per),
        ]
    };
    let (num, den) = l.coverage();
    let mut v = Vec::with_capacity(VALUE_COLUMNS.len() + CAPACITY_COLUMNS.len());
    v.extend(triple(&q.cpu, MCORE_NS_PER_CORE_HOUR, st.modes.cpu));
    v.extend(triple(&q.memory, BYTE_NS_PER_GIB_HOUR, st.modes.memory));
    v.push(qty(q.gpu, GPU_NS_PER_GPU_HOUR));
    v.push(qty(q.net_rx, BYTES_PER_GIB));
    v.push(qty(q.net_tx, BYTES_PER_GIB));
    v.extend(triple(
        &q.ephemeral,
        BYTE_NS_PER_GIB_HOUR,
        st.modes.ephemeral,
    ));
    v.push(Cell::Num(fixed(num, den, 6)));
    v.push(qty(l.observed_ns, NS_PER_HOUR));
    v.push(st.currency.clone().map_or(Cell::Null, Cell::Text));
    match &l.cost {
        Some(c) => {
            v.extend(Resource::ALL.into_iter().map(|r| cents(c.component(r))));
            v.push(cents(Some(c.total)));
            v.push(Cell::List(
                c.unpriced()
                    .into_iter()
                    .map(|r| r.name().to_string())
                    .collect(),
            ));
        }
        None => {
            v.extend((0..Resource::ALL.len() + 1).map(|_| Cell::Null));
            v.push(Cell::List(Vec::new()));
        }
    }
    v.push(match l.cpu_source.as_str() {
        "" => Cell::Null,
        source => Cell::Text(source.to_string()),
    });
    v.extend(gpu_efficiency(q));
    if st.totals.capacity.is_some() {
        let c = l.capacity.unwrap_or_default();
        for (line, per) in [
            (c.cpu, MCORE_NS_PER_CORE_HOUR),
            (c.memory, BYTE_NS_PER_GIB_HOUR),
        ] {
            v.extend([
                qty(line.capacity, per),
                qty(line.idle, per),
                qty(line.overcommit, per),
            ]);
        }
    }
    v
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The statement as a table of plain strings: the CSV's header and lines before quoting. The
/// dashboard shows columns of it, so its numbers are the CSV's digit for digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    /// One line per row, then the totals line (`line` = `total`, key columns empty).
    pub lines: Vec<Vec<String>>,
}

impl Table {
    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

fn plain_cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) | Cell::Num(s) => s.clone(),
        Cell::Null => String::new(),
        Cell::List(items) => items.join(";"),
    }
}

pub fn table(st: &Statement) -> Table {
    let keys = st.by.key_columns();
    let mut header = vec!["line".to_string(), "from".into(), "to".into()];
    header.extend(keys.iter().cloned());
    header.extend(value_columns(st).map(str::to_string));
    let lines = st
        .rows
        .iter()
        .map(|r| ("row", r.key.clone(), r))
        .chain([("total", vec![String::new(); keys.len()], &st.totals)])
        .map(|(kind, key, l)| {
            let mut cells = vec![kind.to_string(), time(l.window.from), time(l.window.to)];
            cells.extend(key);
            cells.extend(values(st, l).iter().map(plain_cell));
            cells
        })
        .collect();
    Table { header, lines }
}

/// The statement as CSV: a header, one line per row, one totals line.
pub fn to_csv(st: &Statement) -> String {
    let t = table(st);
    let mut out = String::new();
    for line in std::iter::once(&t.header).chain(&t.lines) {
        let cells: Vec<String> = line.iter().map(|c| csv_field(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn json_str(s: &str) -> String {
    // Serialising a &str cannot fail; the fallback keeps the function total.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn json_cell(c: &Cell) -> String {
    match c {
        Cell::Text(s) => json_str(s),
        Cell::Num(n) => n.clone(),
        Cell::Null => "null".to_string(),
        Cell::List(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|s| json_str(s))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn json_line(st: &Statement, l: &Line, with_key: bool) -> String {
    let mut fields = vec![
        ("from".to_string(), json_str(&time(l.window.from))),
        ("to".to_string(), json_str(&time(l.window.to))),
    ];
    if with_key {
        for (k, v) in st.by.key_columns().into_iter().zip(&l.key) {
            fields.push((k, json_str(v)));
        }
    }
    for (name, cell) in value_columns(st).zip(values(st, l)) {
        if name != "currency" {
            fields.push((name.to_string(), json_cell(&cell)));
        }
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_str(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// The statement as one JSON object `{from, to, by, modes, currency, rows, totals}` and a
/// final newline.
pub fn to_json(st: &Statement) -> String {
    let rows: Vec<String> = st.rows.iter().map(|r| json_line(st, r, true)).collect();
    format!(
        "{{\"from\":{},\"to\":{},\"complete_to\":{},\"by\":{},\"modes\":{{\"cpu\":{},\"memory\":{},\"ephemeral_storage\":{}}},\"currency\":{},\"rows\":[{}],\"totals\":{}}}\n",
        json_str(&time(st.window.from)),
        json_str(&time(st.window.to)),
        // `null`: complete over the whole window.
        st.complete_to
            .map_or("null".to_string(), |t| json_str(&time(t))),
        json_str(&st.by.name()),
        json_str(st.modes.cpu.as_str()),
        json_str(st.modes.memory.as_str()),
        json_str(st.modes.ephemeral.as_str()),
        st.currency.as_deref().map_or("null".to_string(), json_str),
        rows.join(","),
        json_line(st, &st.totals, false),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::billing::quantities::{CpuSource, Mode, Quantities};
    use crate::billing::samples::Window;
    use crate::billing::statement::{Cost, GroupBy, Modes};

    const OCT1: i64 = 1_790_812_800 * 1_000_000_000; // 2026-10-01T00:00:00Z
    const DAY: i64 = 86_400 * 1_000_000_000;

    fn statement(priced: bool) -> Statement {
        let h = MCORE_NS_PER_CORE_HOUR;
        let g = BYTE_NS_PER_GIB_HOUR;
        let q = Quantities {
            // 1.5 core-hours used, 2 requested, 2.25 under max (interval by interval).
            cpu: Triple {
                usage: 3 * h / 2,
                request: 2 * h,
                max: 9 * h / 4,
            },
            // 1/3 GiB-hour: 0.333333 (rounded half to even at the 6th place).
            memory: Triple {
                usage: g / 3,
                request: g / 3,
                max: g / 3,
            },
            ephemeral: Triple::default(),
            // 2 GPU-hours allocated, busy half a GPU-hour (utilisation 0.25); 4 of 16 GiB-hours
            // of GPU memory used (0.25).
            gpu: 2 * GPU_NS_PER_GPU_HOUR,
            net_rx: BYTES_PER_GIB / 2,
            net_tx: 0,
            gpu_util: PERCENT_NS_PER_GPU_HOUR / 2,
            gpu_memory_used: 4 * g,
            gpu_memory_total: 16 * g,
        };
        let cost = priced.then_some(Cost {
            cpu: Some(7),
            memory: None,
            gpu: Some(0),
            ephemeral_storage: Some(0),
            network_in: Some(0),
            network_out: Some(0),
            total: 7,
        });
        let line = |key: Vec<String>, window: Window| Line {
            key,
            window,
            quantities: q,
            gpu_by_model: BTreeMap::new(),
            // 12 h of the day observed: coverage 0.5.
            observed_ns: 12 * 3_600 * 1_000_000_000,
            cpu_source: CpuSource {
                counter: true,
                rate: false,
            },
            cost,
            capacity: None,
        };
        let w = Window {
            from: OCT1,
            to: OCT1 + DAY,
        };
        Statement {
            window: w,
            by: GroupBy::Label("team".into()),
            modes: Modes {
                cpu: Mode::Max,
                memory: Mode::Usage,
                ephemeral: Mode::Request,
            },
            currency: priced.then(|| "EUR".to_string()),
            rows: vec![line(vec!["a,\"b\"".into()], w)],
            totals: line(Vec::new(), w),
            complete_to: None,
        }
    }

    #[test]
    fn csv_has_fixed_columns_decimals_and_quoting() {
        let header = "line,from,to,label:team,cpu_usage_core_hours,cpu_request_core_hours,\
cpu_max_core_hours,cpu_billed_core_hours,memory_usage_gib_hours,memory_request_gib_hours,\
memory_max_gib_hours,memory_billed_gib_hours,gpu_hours,network_in_gib,network_out_gib,\
ephemeral_storage_usage_gib_hours,ephemeral_storage_request_gib_hours,\
ephemeral_storage_max_gib_hours,ephemeral_storage_billed_gib_hours,coverage,observed_hours,\
currency,cost_cpu,cost_memory,cost_gpu,cost_ephemeral_storage,cost_network_in,\
cost_network_out,cost_total,unpriced,cpu_source,gpu_busy_hours,gpu_utilization,\
gpu_memory_used_gib_hours,gpu_memory_total_gib_hours,gpu_memory_utilization\n";
        let values = "1.500000,2.000000,2.250000,2.250000,0.333333,0.333333,0.333333,0.333333,\
2.000000,0.500000,0.000000,0.000000,0.000000,0.000000,0.000000,0.500000,12.000000";
        let efficiency = "counter,0.500000,0.250000,4.000000,16.000000,0.250000";
        let expected = format!(
            "{header}\
row,2026-10-01T00:00:00Z,2026-10-02T00:00:00Z,\"a,\"\"b\"\"\",{values},EUR,0.07,,0.00,0.00,0.00,0.00,0.07,memory,{efficiency}\n\
total,2026-10-01T00:00:00Z,2026-10-02T00:00:00Z,,{values},EUR,0.07,,0.00,0.00,0.00,0.00,0.07,memory,{efficiency}\n"
        );
        assert_eq!(to_csv(&statement(true)), expected);
        // Without a price book the cost columns stay, empty.
        let unpriced = to_csv(&statement(false));
        assert!(unpriced
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(&format!(",12.000000,,,,,,,,,,{efficiency}")));
    }

    #[test]
    fn json_is_ordered_fixed_decimal_and_parses() {
        let json = to_json(&statement(true));
        assert!(json.starts_with(
            "{\"from\":\"2026-10-01T00:00:00Z\",\"to\":\"2026-10-02T00:00:00Z\",\"complete_to\":null,\"by\":\"label:team\",\
\"modes\":{\"cpu\":\"max\",\"memory\":\"usage\",\"ephemeral_storage\":\"request\"},\"currency\":\"EUR\",\
\"rows\":[{\"from\":\"2026-10-01T00:00:00Z\",\"to\":\"2026-10-02T00:00:00Z\",\"label:team\":\"a,\\\"b\\\"\",\
\"cpu_usage_core_hours\":1.500000,"
        ));
        assert!(json.ends_with(
            "\"cost_total\":0.07,\"unpriced\":[\"memory\"],\"cpu_source\":\"counter\",\
\"gpu_busy_hours\":0.500000,\"gpu_utilization\":0.250000,\"gpu_memory_used_gib_hours\":4.000000,\
\"gpu_memory_total_gib_hours\":16.000000,\"gpu_memory_utilization\":0.250000}}\n"
        ));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["rows"][0]["label:team"], "a,\"b\"");
        assert_eq!(v["totals"]["coverage"], 0.5);
        assert!(v["totals"].get("label:team").is_none());
        assert_eq!(json, to_json(&statement(true)));
        let v: serde_json::Value = serde_json::from_str(&to_json(&statement(false))).unwrap();
        assert_eq!(v["currency"], serde_json::Value::Null);
        assert_eq!(v["rows"][0]["cost_total"], serde_json::Value::Null);
    }
}
