//! Arrow values as the matcher reads them: every non-null value of an array (each element
//! of a list) as text, numbers and times written the way the reference evaluator reads them,
//! whatever encoding a writer chose (large, view and dictionary strings, large lists, narrower
//! numbers, booleans, other time units). Nothing here knows files or rules.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, ListArray, StringArray, TimestampMicrosecondArray,
};

use crate::ingest::doc::format_float;
use crate::ingest::format_micros;
use crate::scan::error::ScanErrorKind;

/// The same values in one of the types [`for_each_value`] reads directly, for the other
/// ways writers store them: large, view and dictionary-encoded strings, large lists,
/// narrower integers and floats, booleans, times in other units. `None`: a type that holds
/// no values a query can match (a struct, a map, bytes).
pub fn plain(array: &dyn Array) -> Option<ArrayRef> {
    use arrow::datatypes::{DataType, Field, TimeUnit};
    let to = match array.data_type() {
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => DataType::Utf8,
        DataType::Dictionary(_, values) if plain_value_type(values) => DataType::Utf8,
        DataType::LargeList(item) | DataType::FixedSizeList(item, _)
            if plain_value_type(item.data_type()) =>
        {
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
            DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
        }
        _ => return None,
    };
    arrow::compute::cast(array, &to).ok()
}

/// Whether values of `t` can be read as text (directly or through [`plain`]).
fn plain_value_type(t: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType;
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
    )
}

/// An error naming `column` when its type holds nothing a query can match: the unit fails
/// (and is reported) rather than matching nothing without a word.
pub fn matchable(column: &str, array: &dyn Array) -> Result<(), ScanErrorKind> {
    use arrow::datatypes::DataType;
    let direct = match array.data_type() {
        DataType::Utf8 | DataType::Int64 | DataType::Float64 | DataType::Null => true,
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => true,
        DataType::List(item) => plain_value_type(item.data_type()),
        _ => false,
    };
    if direct || plain(&array.slice(0, 0)).is_some() {
        Ok(())
    } else {
        Err(ScanErrorKind::Unmatchable {
            column: column.to_string(),
            data_type: array.data_type().to_string(),
        })
    }
}

/// Calls `f(position, text)` for every non-null value (every element of a list), numbers and
/// times as text the way the reference evaluator reads them; other encodings of such values
/// go through [`plain`].
pub fn for_each_value(array: &dyn Array, f: &mut dyn FnMut(usize, &str)) {
    let any = array.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                f(i, a.value(i));
            }
        }
    } else if let Some(a) = any.downcast_ref::<ListArray>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                let items = a.value(i);
                for_each_value(items.as_ref(), &mut |_, v| f(i, v));
            }
        }
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                f(i, &a.value(i).to_string());
            }
        }
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                f(i, &format_float(a.value(i)));
            }
        }
    } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
        for i in 0..a.len() {
            if a.is_valid(i) {
                f(i, &format_micros(a.value(i)));
            }
        }
    } else if let Some(a) = plain(array) {
        for_each_value(a.as_ref(), f);
    }
}

/// Every value of position `at` as text (each element of a list).
pub fn all_texts(array: &dyn Array, at: usize) -> Vec<String> {
    let mut out = Vec::new();
    for_each_value(&array.slice(at, 1), &mut |_, v| out.push(v.to_string()));
    out
}

/// The first value of position `at` as text.
pub fn first_text(array: &dyn Array, at: usize) -> Option<String> {
    let mut out = None;
    for_each_value(&array.slice(at, 1), &mut |_, v| {
        if out.is_none() {
            out = Some(v.to_string());
        }
    });
    out
}
