//! Kubernetes resource quantities (`10M`, `1Gi`, `1.5e3`), parsed to the
//! integer `resource.Quantity.Value()` gives (rounded up), for the pod
//! bandwidth annotations.

/// Parses `s` as apimachinery's `resource.ParseQuantity` and returns
/// `Value()`: the amount rounded up to an integer. Errors name what is wrong.
pub(crate) fn parse_quantity_value(s: &str) -> Result<i128, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("quantities must match the regular expression".into());
    }
    let (negative, rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err("quantities must match the regular expression".into());
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err("quantity too large".into());
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| "invalid number".to_string())?
    };
    // value = mantissa * 10^-frac * (mul_num / mul_den)
    let mut scale10: i32 = -(frac_part.len() as i32);
    let mut binary: u32 = 0;
    match suffix {
        "" => {}
        "Ki" => binary = 10,
        "Mi" => binary = 20,
        "Gi" => binary = 30,
        "Ti" => binary = 40,
        "Pi" => binary = 50,
        "Ei" => binary = 60,
        "n" => scale10 -= 9,
        "u" => scale10 -= 6,
        "m" => scale10 -= 3,
        "k" => scale10 += 3,
        "M" => scale10 += 6,
        "G" => scale10 += 9,
        "T" => scale10 += 12,
        "P" => scale10 += 15,
        "E" => scale10 += 18,
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(|| format!("unable to parse quantity's suffix {other:?}"))?;
            let exp: i32 = exp
                .parse()
                .map_err(|_| format!("unable to parse quantity's suffix {other:?}"))?;
            if !(-60..=60).contains(&exp) {
                return Err("quantity exponent out of range".into());
            }
            scale10 += exp;
        }
    }
    let mut num: i128 = mantissa
        .checked_mul(1i128 << binary)
        .ok_or_else(|| "quantity too large".to_string())?;
    let mut den: i128 = 1;
    if scale10 >= 0 {
        let p = 10i128
            .checked_pow(scale10 as u32)
            .ok_or_else(|| "quantity too large".to_string())?;
        num = num
            .checked_mul(p)
            .ok_or_else(|| "quantity too large".to_string())?;
    } else {
        den = 10i128
            .checked_pow((-scale10) as u32)
            .ok_or_else(|| "quantity too small".to_string())?;
    }
    let value = (num + den - 1) / den; // ceil for non-negative
    Ok(if negative { -(num / den) } else { value })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(input: &str, expected: Result<i128, ()>) {
        assert_eq!(
            parse_quantity_value(input).map_err(|_| ()),
            expected,
            "{input}"
        );
    }

    #[test]
    fn plain_and_decimal_suffixes() {
        check("1000", Ok(1000));
        check("1k", Ok(1000));
        check("10M", Ok(10_000_000));
        check("1.5M", Ok(1_500_000));
        check("2G", Ok(2_000_000_000));
        check("1P", Ok(1_000_000_000_000_000));
        check(".5k", Ok(500));
    }

    #[test]
    fn binary_suffixes() {
        check("1Ki", Ok(1024));
        check("1Mi", Ok(1 << 20));
        check("1.5Gi", Ok(3 << 29));
    }

    #[test]
    fn exponents_and_rounding_up() {
        check("1e3", Ok(1000));
        check("1E6", Ok(1_000_000));
        check("1500m", Ok(2));
        check("1m", Ok(1));
    }

    #[test]
    fn malformed() {
        check("", Err(()));
        check("abc", Err(()));
        check("1x", Err(()));
        check("1.2.3", Err(()));
        check("10MB", Err(()));
    }
}
