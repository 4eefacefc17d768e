//! Expected counts for indirect standardisation (SPEC section 3).
//!
//! For units `u` (ICBs, or the levels of a factor crossed with whatever else is kept apart),
//! strata `s` and measures `m`:
//!
//! * national stratum rate `R[s, m] = sum_u O[u, s, m] / sum_u P[u, s]` (tests per person);
//! * expected count of unit `u`: `E[u, m] = sum_s R[s, m] * P[u, s]`;
//! * units are then summed into groups: `E[g, m] = sum_{u in g} E[u, m]`, likewise `O`.
//!
//! Invariant: `sum_g E[g, m] = sum_g O[g, m]` for every measure (exactly, up to rounding),
//! because every stratum's tests are redistributed in proportion to its population.

use rayon::prelude::*;

use crate::error::CoreError;

/// Observed and expected counts per group and measure, row-major `[group][measure]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    pub observed: Vec<f64>,
    pub expected: Vec<f64>,
}

/// Shapes: `observed` is `[unit][stratum][measure]`, `population` `[unit][stratum]`,
/// `groups[unit]` in `0..n_groups`.
pub fn expected_counts(
    observed: &[f64],
    population: &[f64],
    groups: &[usize],
    n_strata: usize,
    n_measure: usize,
    n_groups: usize,
) -> Result<Expected, CoreError> {
    let n_units = groups.len();
    if observed.len() != n_units * n_strata * n_measure || population.len() != n_units * n_strata {
        return Err(CoreError::Shape(format!(
            "expected_counts: observed has {} cells and population {} for {n_units} units, \
             {n_strata} strata, {n_measure} measures",
            observed.len(),
            population.len()
        )));
    }
    if let Some(&g) = groups.iter().find(|&&g| g >= n_groups) {
        return Err(CoreError::Shape(format!(
            "expected_counts: group {g} is not below {n_groups}"
        )));
    }
    for (i, &p) in population.iter().enumerate() {
        if !(p.is_finite() && p >= 0.0) {
            return Err(CoreError::BadPopulation {
                unit: i / n_strata.max(1),
                stratum: i % n_strata.max(1),
                value: p,
            });
        }
    }
    if let Some(&o) = observed.iter().find(|o| !(o.is_finite() && **o >= 0.0)) {
        return Err(CoreError::Shape(format!(
            "expected_counts: observed count {o} is not a non-negative number"
        )));
    }

    // National stratum totals, summed in unit order so the result does not depend on threads.
    let mut o_nat = vec![0.0; n_strata * n_measure];
    let mut p_nat = vec![0.0; n_strata];
    for u in 0..n_units {
        let o_u = &observed[u * n_strata * n_measure..(u + 1) * n_strata * n_measure];
        for (acc, &o) in o_nat.iter_mut().zip(o_u) {
            *acc += o;
        }
        for (acc, &p) in p_nat
            .iter_mut()
            .zip(&population[u * n_strata..(u + 1) * n_strata])
        {
            *acc += p;
        }
    }
    let mut rate = vec![0.0; n_strata * n_measure];
    for s in 0..n_strata {
        for m in 0..n_measure {
            let o = o_nat[s * n_measure + m];
            if p_nat[s] > 0.0 {
                rate[s * n_measure + m] = o / p_nat[s];
            } else if o > 0.0 {
                return Err(CoreError::ZeroPopulation {
                    stratum: s,
                    measure: m,
                    observed: o,
                });
            }
        }
    }

    // Per-unit expected and observed totals, in parallel over units.
    let per_unit: Vec<(Vec<f64>, Vec<f64>)> = (0..n_units)
        .into_par_iter()
        .map(|u| {
            let mut e = vec![0.0; n_measure];
            let mut o = vec![0.0; n_measure];
            for s in 0..n_strata {
                let p = population[u * n_strata + s];
                let base = (u * n_strata + s) * n_measure;
                for m in 0..n_measure {
                    e[m] += rate[s * n_measure + m] * p;
                    o[m] += observed[base + m];
                }
            }
            (e, o)
        })
        .collect();

    let mut out = Expected {
        observed: vec![0.0; n_groups * n_measure],
        expected: vec![0.0; n_groups * n_measure],
    };
    for (u, (e, o)) in per_unit.iter().enumerate() {
        let g = groups[u];
        for m in 0..n_measure {
            out.expected[g * n_measure + m] += e[m];
            out.observed[g * n_measure + m] += o[m];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_sums_to_observed() {
        // 3 units, 2 strata, 1 measure
        let observed = [10.0, 0.0, 5.0, 5.0, 1.0, 20.0];
        let population = [100.0, 50.0, 100.0, 100.0, 10.0, 200.0];
        let r = expected_counts(&observed, &population, &[0, 1, 2], 2, 1, 3).unwrap();
        let total_e: f64 = r.expected.iter().sum();
        let total_o: f64 = r.observed.iter().sum();
        assert!((total_e - total_o).abs() < 1e-9, "{total_e} vs {total_o}");
        // R = [16/210, 25/350]; E0 = 100*16/210 + 50*25/350
        let e0 = 100.0 * 16.0 / 210.0 + 50.0 * 25.0 / 350.0;
        assert!((r.expected[0] - e0).abs() < 1e-12);
        assert_eq!(r.observed, vec![10.0, 10.0, 21.0]);
    }

    #[test]
    fn groups_sum_units() {
        let observed = [1.0, 2.0, 3.0, 4.0];
        let population = [10.0, 10.0, 10.0, 10.0];
        let r = expected_counts(&observed, &population, &[0, 0, 1, 1], 1, 1, 2).unwrap();
        assert_eq!(r.observed, vec![3.0, 7.0]);
        assert!((r.expected[0] - 5.0).abs() < 1e-12);
    }

    #[test]
    fn zero_population_with_tests_names_the_stratum() {
        let err = expected_counts(&[0.0, 3.0], &[5.0, 0.0], &[0], 2, 1, 1).unwrap_err();
        assert!(matches!(
            err,
            CoreError::ZeroPopulation {
                stratum: 1,
                measure: 0,
                ..
            }
        ));
        // no tests and no people is fine: the stratum contributes nothing
        let ok = expected_counts(&[2.0, 0.0], &[5.0, 0.0], &[0], 2, 1, 1).unwrap();
        assert_eq!(ok.expected, vec![2.0]);
    }

    #[test]
    fn negative_population_is_rejected() {
        let err = expected_counts(&[0.0], &[-1.0], &[0], 1, 1, 1).unwrap_err();
        assert!(matches!(err, CoreError::BadPopulation { .. }));
    }
}
