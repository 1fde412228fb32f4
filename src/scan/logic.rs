//! A version's program evaluated over the bits of its leaves, a row group at a time: exact
//! ([`eval2`], a leaf not computed is false) or in Kleene's three-valued logic with some
//! leaves still unknown ([`eval3`]), which tells the rows every version has decided apart
//! from those that need the late columns.

use std::collections::BTreeSet;

use arrow::buffer::BooleanBuffer;

use crate::plan::Expr;

fn leaf_bits(bits: &[Option<BooleanBuffer>], id: usize, rows: usize) -> BooleanBuffer {
    bits[id]
        .clone()
        .unwrap_or_else(|| BooleanBuffer::new_unset(rows))
}

/// Exact evaluation: a leaf never computed (its column absent from this file) is false.
pub fn eval2(e: &Expr, bits: &[Option<BooleanBuffer>], rows: usize) -> BooleanBuffer {
    match e {
        Expr::True => BooleanBuffer::new_set(rows),
        Expr::False => BooleanBuffer::new_unset(rows),
        Expr::Leaf(id) => leaf_bits(bits, *id, rows),
        Expr::Not(inner) => !&eval2(inner, bits, rows),
        Expr::And(items) => items.iter().fold(BooleanBuffer::new_set(rows), |acc, i| {
            &acc & &eval2(i, bits, rows)
        }),
        Expr::Or(items) => items.iter().fold(BooleanBuffer::new_unset(rows), |acc, i| {
            &acc | &eval2(i, bits, rows)
        }),
        Expr::AtLeast(n, items) => {
            let each: Vec<BooleanBuffer> = items.iter().map(|i| eval2(i, bits, rows)).collect();
            BooleanBuffer::collect_bool(rows, |r| each.iter().filter(|b| b.value(r)).count() >= *n)
        }
    }
}

/// Kleene evaluation with the `unknown` leaves not yet computed: (surely true, surely false).
pub fn eval3(
    e: &Expr,
    bits: &[Option<BooleanBuffer>],
    unknown: &BTreeSet<usize>,
    rows: usize,
) -> (BooleanBuffer, BooleanBuffer) {
    let none = || BooleanBuffer::new_unset(rows);
    let all = || BooleanBuffer::new_set(rows);
    match e {
        Expr::True => (all(), none()),
        Expr::False => (none(), all()),
        Expr::Leaf(id) if unknown.contains(id) => (none(), none()),
        Expr::Leaf(id) => {
            let b = leaf_bits(bits, *id, rows);
            let f = !&b;
            (b, f)
        }
        Expr::Not(inner) => {
            let (t, f) = eval3(inner, bits, unknown, rows);
            (f, t)
        }
        Expr::And(items) => items.iter().fold((all(), none()), |(t, f), i| {
            let (ti, fi) = eval3(i, bits, unknown, rows);
            (&t & &ti, &f | &fi)
        }),
        Expr::Or(items) => items.iter().fold((none(), all()), |(t, f), i| {
            let (ti, fi) = eval3(i, bits, unknown, rows);
            (&t | &ti, &f & &fi)
        }),
        Expr::AtLeast(n, items) => {
            let each: Vec<_> = items
                .iter()
                .map(|i| eval3(i, bits, unknown, rows))
                .collect();
            let t = BooleanBuffer::collect_bool(rows, |r| {
                each.iter().filter(|(t, _)| t.value(r)).count() >= *n
            });
            let f = BooleanBuffer::collect_bool(rows, |r| {
                each.iter().filter(|(_, f)| !f.value(r)).count() < *n
            });
            (t, f)
        }
    }
}
