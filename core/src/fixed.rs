//! The integer arithmetic of the kernel: patch requantisation and the ReLU
//! step of the recursion in fixed point.
//!
//! Everything here is integer-only, so every target (x86-64, Cortex-M4F,
//! Cortex-M0+) computes bit-identical results; no float is involved, and no
//! FPU is needed.
//!
//! # The ReLU step
//!
//! Per grid position, from the pre-activation covariance `K`, the NTK
//! accumulator `Theta` and the two variances `q_z`, `q_x` (`Q = q_z q_x`):
//!
//! ```text
//! rho      = K / sqrt(Q)
//! Kdot     = (pi - acos rho) / pi
//! J        = (sqrt(1 - rho^2) + (pi - acos rho) rho) / pi
//! Khat     = sqrt(Q) J
//! Thetahat = Theta Kdot
//! ```
//!
//! It runs once per grid position and centre, so it is built to cost a
//! few dozen instructions: no division, no square root, one table-driven
//! reciprocal square root of `Q`, and one table lookup for the pair
//! `(Kdot, J)`. Accuracy comes from choosing, per branch, a variable in
//! which the functions are smooth and which the integers give precisely:
//!
//! 1. `|rho| = 1` (`K^2 >= Q`, exact in integers: a centre equal to the
//!    query, collinear patches, or a later layer's rounding a fraction of a
//!    unit past `sqrt Q`): `Khat = |K|` or `0`, `Kdot = 1` or `0`, exactly.
//! 2. `|rho| < 3/4`: `Kdot` and `J` are smooth in `rho`, which a reciprocal
//!    square root good to ~1e-5 gives to ~1e-5: a uniform table in `rho`.
//! 3. `|rho| >= 3/4`: both have a square-root singularity at `rho = 1`, where
//!    `1 - |rho|` would be lost to cancellation. There `w = 1 - rho^2 =
//!    (Q - K^2) / Q` comes from the exact integer residual `Q - K^2`, so its
//!    *relative* error is that of `1/Q` (~1e-5) however close `rho` is to 1;
//!    `Kdot` and `G = J / |rho|` are tabulated in octaves of `w`, and
//!    `Khat = |K| G`, which needs no `sqrt Q` at all. (`G = 1 + w^1.5/(3 pi)
//!    + ...` is flat near `w = 0`, so near-duplicates get `Khat` to the
//!    precision of `|K|`, an exact integer: the next layer's `rho` near 1
//!    does not inherit a rounding of `sqrt Q`.)
//!
//! Negative `rho` uses `Kdot(-x) = 1 - Kdot(x)` and `J(-x) = J(x) - x`, that
//! is `Khat(-x) = Khat(x) - |K|`.
//!
//! The tables are one-sided where a range proof needs it: the reciprocal
//! square root never exceeds `1/sqrt(Q)` and `G` never exceeds the true `G`,
//! so `Khat <= sqrt(Q) + 1/2`, hence `Khat <= max(q_z, q_x)`, as the bounds
//! of `kernel_bounds` assume. The exact definition, step by step, is
//! [`relu_step`]; `docs/blob-format.md` repeats it for the host side.

/// `1.0` in Q15.
pub const ONE_Q15: i32 = 1 << 15;

/// `|rho|` in Q30 below which the uniform `rho` table is used (3/4).
const RHO_SPLIT: u32 = 3 << 28;

/// Nodes of [`RHO_TABLE`]: `rho = i / 128`, `i = 0..=96` (0 to 3/4).
pub const RHO_NODES: usize = 97;

/// Octaves of `w` in [`W_TABLE`] that the kernel reads (`w` in Q31,
/// `2^-31 <= w < 1/2`).
pub const W_OCTAVES: usize = 30;
/// Nodes per octave of `w` in [`W_TABLE`].
pub const W_PER_OCTAVE: usize = 16;
/// Nodes of [`W_TABLE`]: one per octave and sixteenth of every `u32`
/// exponent (so any index a `u32` gives is in range), plus the end.
pub const W_NODES: usize = 32 * W_PER_OCTAVE + 1;

/// Nodes of [`RSQRT_TABLE`]: `x = 2^23 i`, `i = 0..=512` (any index a
/// `u32` gives is in range; the kernel reads `i >= 128`, `x >= 2^30`).
pub const RSQRT_NODES: usize = 513;

/// `(Kdot - 1/2, J)` at `rho = i / 128`, `i = 0..=96`, in Q17 and Q16
/// rounded to nearest, packed `(Kdot - 1/2) | J << 16`. Checked in; the test
/// `tables_match_formulas` regenerates it from the f64 formulas and asserts
/// equality, so do not edit it by hand.
#[rustfmt::skip]
pub const RHO_TABLE: [u32; RHO_NODES] = [
    1367146496, 1383924038, 1400832652, 1417806802, 1434912024, 1452082782, 1469319076, 1486620907,
    1504053809, 1521486712, 1539050687, 1556745734, 1574440781, 1592266901, 1610224092, 1628181285,
    1646269549, 1664423350, 1682642687, 1700993096, 1719409042, 1737890524, 1756503079, 1775115634,
    1793924797, 1812733961, 1831674198, 1850679971, 1869751281, 1888888127, 1908156046, 1927555038,
    1946954030, 1966484095, 1986079697, 2005806371, 2025533047, 2045456331, 2065379616, 2085433973,
    2105553868, 2125739300, 2146055804, 2166437846, 2186950960, 2207529612, 2228173801, 2248949063,
    2269724326, 2290696198, 2311733607, 2332836554, 2354005038, 2375304595, 2396669690, 2418165858,
    2439727564, 2461420343, 2483113124, 2505002515, 2526957443, 2548977909, 2571129448, 2593346526,
    2615629141, 2638042831, 2660587594, 2683197896, 2705873735, 2728680649, 2751618637, 2774622164,
    2797756765, 2820956904, 2844288118, 2867684871, 2891212699, 2914806065, 2938530507, 2962386024,
    2986307080, 3010359211, 3034476881, 3058725628, 3083105450, 3107616348, 3132192786, 3156900300,
    3181673355, 3206643022, 3231678230, 3256844515, 3282141877, 3307504780, 3333064298, 3358689357,
    3384511030,
];

/// `(1 - Kdot, G - 1)` as functions of `w = 1 - rho^2` (`rho >= 0`, and
/// `G = J / rho`), at `w = 2^(e - 31) (1 + s / 16)` for octave `e = 0..=29`
/// and `s = 0..=15`, then `w = 1/2` (repeated up to the end: entries the
/// kernel never reads); in Q17 and Q19, packed `(1 - Kdot) | (G - 1) << 16`.
/// `1 - Kdot` is rounded to nearest; `G - 1` is rounded down by enough
/// that the linear interpolation never exceeds the true value. Regenerated by `tables_match_formulas`.
#[rustfmt::skip]
pub const W_TABLE: [u32; W_NODES] = [
    1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 2,
    2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 3,
    3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 4,
    4, 4, 4, 4, 4, 4, 4, 4,
    4, 5, 5, 5, 5, 5, 5, 5,
    5, 5, 5, 6, 6, 6, 6, 6,
    6, 6, 6, 7, 7, 7, 7, 7,
    7, 7, 8, 8, 8, 8, 8, 9,
    9, 9, 9, 9, 10, 10, 10, 10,
    10, 10, 11, 11, 11, 12, 12, 12,
    12, 13, 13, 13, 13, 14, 14, 14,
    14, 15, 15, 16, 16, 17, 17, 17,
    18, 18, 18, 19, 19, 19, 20, 20,
    20, 21, 22, 22, 23, 23, 24, 24,
    25, 25, 26, 26, 27, 27, 28, 28,
    29, 30, 31, 31, 32, 33, 34, 35,
    35, 36, 37, 37, 38, 39, 39, 40,
    41, 42, 43, 44, 46, 47, 48, 49,
    50, 51, 52, 53, 54, 55, 56, 57,
    58, 59, 61, 63, 64, 66, 68, 69,
    71, 72, 73, 75, 76, 78, 79, 80,
    81, 84, 86, 89, 91, 93, 96, 98,
    100, 102, 104, 106, 108, 110, 112, 113,
    115, 119, 122, 126, 129, 132, 135, 138,
    141, 144, 147, 150, 152, 155, 158, 160,
    163, 168, 173, 178, 182, 187, 191, 195,
    200, 204, 208, 212, 216, 219, 223, 227,
    230, 238, 244, 251, 258, 264, 270, 276,
    282, 288, 294, 299, 305, 310, 316, 321,
    326, 336, 346, 355, 364, 373, 382, 391,
    399, 407, 416, 423, 431, 439, 446, 454,
    461, 475, 489, 502, 515, 528, 541, 553,
    565, 576, 588, 599, 610, 621, 631, 642,
    652, 672, 691, 710, 729, 747, 764, 782,
    798, 815, 831, 847, 862, 878, 893, 907,
    922, 950, 978, 1005, 1031, 1056, 1081, 1105,
    1129, 1153, 1175, 1198, 1220, 1241, 1263, 1283,
    1304, 1344, 66919, 66957, 66994, 67030, 67065, 67100,
    132669, 132702, 132734, 132766, 132797, 198364, 198394, 198423,
    198452, 264045, 264100, 329690, 329742, 395329, 395379, 460964,
    461011, 526594, 526640, 592221, 657801, 657844, 723422, 723464,
    789041, 854658, 985808, 1051420, 1182566, 1248174, 1379316, 1444921,
    1576061, 1641663, 1772800, 1838399, 1969533, 2100667, 2231799, 2297394,
    2428525, 2690782, 2953037, 3215289, 3477538, 3739784, 4002028, 4264270,
    4592045, 4854283, 5182055, 5509825, 5837594, 6099825, 6427590, 6820890,
    7148653, 7804175, 8525228, 9246277, 10032858, 10819435, 11606009, 12458116,
    13244684, 14096786, 15014421, 15866517, 16784147, 17767311, 18684937, 19668096,
    20651254, 22617565, 24714941, 26877848, 29106285, 31334716, 33694216, 36053710,
    38544273, 41034832, 43656459, 46278083, 48965240, 51717930, 54470616, 57354373,
    60238126, 66267770, 72494013, 78916856, 85536299, 92417879, 99430525, 106705309,
    114176695, 121910220, 129774812, 137901544, 146159343, 154679282, 163395825, 172308973,
    181353189, 200228043, 219954854, 240468085, 261833275, 284050423, 307119531, 331040599,
    355879164, 381569691, 408177715, 435703237, 464211794, 493637849, 523981404, 555373531,
    587289941, 655120447, 727276314, 803888617, 885219501, 971465576, 1063020058, 1160014021,
    1262775145, 1371827720, 1487368353, 1609921335, 1739945418, 1877899353, 2024372967, 2180087156,
    2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352,
    2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352,
    2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352,
    2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352, 2345828352,
    2345828352,
];

/// `2^46 / sqrt(x)` at `x = 2^23 i`, `i = 128..=512`, rounded down by
/// enough that the linear interpolation of [`rsqrt_q46`] never exceeds the
/// true value; entries `0..128` are 0 (never read by the kernel). Regenerated by `tables_match_formulas`.
#[rustfmt::skip]
pub const RSQRT_TABLE: [u32; RSQRT_NODES] = [
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    2147471477, 2139131703, 2130888576, 2122740014, 2114684223, 2106719454, 2098844008, 2091056227,
    2083354495, 2075737240, 2068202930, 2060750070, 2053377202, 2046082907, 2038865797, 2031724522,
    2024657763, 2017664233, 2010742675, 2003891864, 1997110603, 1990397722, 1983752081, 1977172564,
    1970658083, 1964207571, 1957819990, 1951494323, 1945229575, 1939024776, 1932878976, 1926791245,
    1920760674, 1914786376, 1908867479, 1903003133, 1897192505, 1891434781, 1885729160, 1880074865,
    1874471128, 1868917201, 1863412351, 1857955859, 1852547021, 1847185147, 1841869562, 1836599604,
    1831374623, 1826193984, 1821057062, 1815963247, 1810911938, 1805902549, 1800934501, 1796007230,
    1791120182, 1786272810, 1781464583, 1776694976, 1771963474, 1767269572, 1762612777, 1757992600,
    1753408565, 1748860202, 1744347053, 1739868664, 1735424592, 1731014400, 1726637661, 1722293953,
    1717982864, 1713703986, 1709456921, 1705241277, 1701056668, 1696902714, 1692779045, 1688685292,
    1684621098, 1680586107, 1676579970, 1672602347, 1668652901, 1664731300, 1660837219, 1656970336,
    1653130339, 1649316915, 1645529761, 1641768574, 1638033062, 1634322932, 1630637898, 1626977679,
    1623341997, 1619730580, 1616143160, 1612579470, 1609039252, 1605522247, 1602028204, 1598556875,
    1595108012, 1591681377, 1588276731, 1584893840, 1581532471, 1578192400, 1574873403, 1571575257,
    1568297746, 1565040655, 1561803773, 1558586893, 1555389809, 1552212318, 1549054222, 1545915324,
    1542795430, 1539694350, 1536611894, 1533547878, 1530502118, 1527474433, 1524464646, 1521472581,
    1518498064, 1515540925, 1512600996, 1509678109, 1506772101, 1503882811, 1501010077, 1498153743,
    1495313655, 1492489657, 1489681598, 1486889330, 1484112705, 1481351577, 1478605803, 1475875241,
    1473159750, 1470459194, 1467773435, 1465102339, 1462445773, 1459803606, 1457175707, 1454561950,
    1451962206, 1449376354, 1446804267, 1444245826, 1441700909, 1439169399, 1436651177, 1434146128,
    1431654137, 1429175091, 1426708880, 1424255391, 1421814517, 1419386150, 1416970182, 1414566509,
    1412175027, 1409795634, 1407428227, 1405072708, 1402728974, 1400396931, 1398076480, 1395767526,
    1393469974, 1391183732, 1388908704, 1386644802, 1384391934, 1382150011, 1379918945, 1377698649,
    1375489034, 1373290018, 1371101516, 1368923442, 1366755716, 1364598255, 1362450978, 1360313807,
    1358186662, 1356069464, 1353962136, 1351864602, 1349776786, 1347698615, 1345630012, 1343570906,
    1341521223, 1339480893, 1337449844, 1335428005, 1333415308, 1331411685, 1329417066, 1327431385,
    1325454576, 1323486572, 1321527307, 1319576719, 1317634742, 1315701314, 1313776373, 1311859854,
    1309951700, 1308051847, 1306160237, 1304276810, 1302401507, 1300534270, 1298675040, 1296823762,
    1294980378, 1293144833, 1291317071, 1289497037, 1287684678, 1285879938, 1284082766, 1282293108,
    1280510912, 1278736126, 1276968700, 1275208582, 1273455722, 1271710071, 1269971579, 1268240197,
    1266515877, 1264798571, 1263088232, 1261384812, 1259688267, 1257998548, 1256315611, 1254639409,
    1252969900, 1251307036, 1249650777, 1248001076, 1246357893, 1244721182, 1243090902, 1241467011,
    1239849469, 1238238232, 1236633260, 1235034513, 1233441951, 1231855534, 1230275222, 1228700977,
    1227132759, 1225570531, 1224014254, 1222463891, 1220919403, 1219380756, 1217847910, 1216320832,
    1214799482, 1213283829, 1211773832, 1210269461, 1208770678, 1207277450, 1205789742, 1204307520,
    1202830751, 1201359401, 1199893437, 1198432827, 1196977538, 1195527537, 1194082794, 1192643275,
    1191208950, 1189779788, 1188355758, 1186936828, 1185522969, 1184114150, 1182710342, 1181311515,
    1179917639, 1178528687, 1177144628, 1175765432, 1174391075, 1173021524, 1171656755, 1170296738,
    1168941446, 1167590851, 1166244927, 1164903648, 1163566984, 1162234912, 1160907405, 1159584435,
    1158265979, 1156952009, 1155642501, 1154337430, 1153036771, 1151740497, 1150448586, 1149161013,
    1147877753, 1146598783, 1145324078, 1144053615, 1142787371, 1141525321, 1140267443, 1139013715,
    1137764114, 1136518616, 1135277200, 1134039841, 1132806521, 1131577216, 1130351904, 1129130564,
    1127913174, 1126699714, 1125490161, 1124284496, 1123082697, 1121884744, 1120690617, 1119500293,
    1118313755, 1117130982, 1115951954, 1114776650, 1113605053, 1112437141, 1111272896, 1110112300,
    1108955332, 1107801973, 1106652207, 1105506012, 1104363372, 1103224268, 1102088681, 1100956593,
    1099827986, 1098702845, 1097581149, 1096462881, 1095348024, 1094236561, 1093128475, 1092023749,
    1090922365, 1089824306, 1088729557, 1087638100, 1086549919, 1085464998, 1084383320, 1083304869,
    1082229630, 1081157586, 1080088722, 1079023022, 1077960470, 1076901050, 1075844749, 1074791549,
    1073741437,
];

/// `a + (b - a) f / 2^16` rounded down, for `a <= b < 2^16`, `f < 2^16`.
#[inline]
#[allow(clippy::arithmetic_side_effects)] // (b - a) f < 2^32; the sum <= b
fn lerp_up(a: u32, b: u32, f: u32) -> u32 {
    a + (((b - a) * f) >> 16)
}

/// Two adjacent nodes of a packed table (`first | second << 16`), the last
/// interval for any index past it.
#[inline]
fn nodes(table: &[u32], i: usize) -> (u32, u32) {
    let last = table.len().saturating_sub(2);
    let i = i.min(last);
    let lo = table.get(i).copied().unwrap_or(0);
    let hi = table.get(i.saturating_add(1)).copied().unwrap_or(lo);
    (lo, hi)
}

/// `2^46 / sqrt(x)` for `x` in `[2^30, 2^32)`, never above the true value
/// and at most 1.2e-5 below it (relative); linear interpolation between
/// the nodes around `x`, with all 23 bits of its position:
///
/// ```text
/// i = x >> 23,  R = T[i] - hi((T[i] - T[i+1]) (x << 9))
/// ```
///
/// For `x < 2^30` the value is unspecified (no panic).
#[inline(always)]
pub fn rsqrt_q46(x: u32) -> u32 {
    // i <= 511, so both nodes exist.
    let i = (x >> 23) as usize;
    let lo = RSQRT_TABLE.get(i).copied().unwrap_or(0);
    let hi = RSQRT_TABLE.get(i.saturating_add(1)).copied().unwrap_or(lo);
    lo.wrapping_sub(high_word(lo.wrapping_sub(hi), x << 9))
}

/// `(a b) >> 32`: the high word of a 32 x 32-bit product.
#[inline(always)]
fn high_word(a: u32, b: u32) -> u32 {
    (mul_wide(a, b) >> 32) as u32
}

/// `x.leading_zeros()`. ARMv6-M has no count-leading-zeros instruction
/// and calls a library routine for it; there a five-step binary search
/// inline is about half the cost. Same result on every target.
#[inline(always)]
fn leading_zeros(x: u32) -> u32 {
    #[cfg(all(target_arch = "arm", not(target_has_atomic = "32")))]
    {
        leading_zeros_search(x)
    }
    #[cfg(not(all(target_arch = "arm", not(target_has_atomic = "32"))))]
    {
        x.leading_zeros()
    }
}

/// [`leading_zeros`] by binary search (ARMv6-M's; the tests check it
/// against `u32::leading_zeros` everywhere).
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // n <= 31 before the last step
#[cfg_attr(
    not(any(test, all(target_arch = "arm", not(target_has_atomic = "32")))),
    allow(dead_code)
)]
fn leading_zeros_search(x: u32) -> u32 {
    if x == 0 {
        return 32;
    }
    let (mut x, mut n) = (x, 0);
    for s in [16, 8, 4, 2, 1] {
        if x >> (32 - s) == 0 {
            n += s;
            x <<= s;
        }
    }
    n
}

/// `a b` as a u64. ARMv6-M (Cortex-M0/M0+, the Arm targets without 32-bit
/// atomics) has no 32 x 32 -> 64 multiply instruction, and a u64 product
/// becomes a call to a general 64 x 64 routine; there four 16 x 16 -> 32
/// products and their carries cost a third of that. The result is the
/// same exact product on every target.
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // each partial product < 2^32; the sum is a b < 2^64
pub(crate) fn mul_wide(a: u32, b: u32) -> u64 {
    #[cfg(all(target_arch = "arm", not(target_has_atomic = "32")))]
    {
        mul_halves(a, b)
    }
    #[cfg(not(all(target_arch = "arm", not(target_has_atomic = "32"))))]
    {
        u64::from(a) * u64::from(b)
    }
}

/// `a b` from four 16 x 16 -> 32 products (ARMv6-M's [`mul_wide`]; the
/// tests check it against the u64 product everywhere).
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // each partial product < 2^32; the sum is a b < 2^64
#[cfg_attr(
    not(any(test, all(target_arch = "arm", not(target_has_atomic = "32")))),
    allow(dead_code)
)]
fn mul_halves(a: u32, b: u32) -> u64 {
    let (al, ah, bl, bh) = (a & 0xFFFF, a >> 16, b & 0xFFFF, b >> 16);
    let mid = u64::from(al * bh) + u64::from(ah * bl);
    (u64::from(ah * bh) << 32) + (mid << 16) + u64::from(al * bl)
}

/// `(Kdot, J)` in Q15 and Q16 for `0 <= rho < 3/4` given in Q30:
/// `i = rho >> 23`, `f = (rho >> 7) & 0xFFFF`, both interpolated upwards
/// from node `i` (both increase with `rho`); `Kdot = 2^14 + (c + 2) >> 2`
/// from the Q17 `c = Kdot - 1/2`.
#[inline]
#[allow(clippy::arithmetic_side_effects)] // c < 2^16
fn rho_coefficients(rho_q30: u32) -> (u32, u32) {
    let (lo, hi) = nodes(&RHO_TABLE, (rho_q30 >> 23) as usize);
    let f = (rho_q30 >> 7) & 0xFFFF;
    let c = lerp_up(lo & 0xFFFF, hi & 0xFFFF, f);
    ((1 << 14) + ((c + 2) >> 2), lerp_up(lo >> 16, hi >> 16, f))
}

/// `(Kdot, G - 1)` in Q15 and Q19 for `w = 1 - rho^2` given in Q31
/// (`w < 2^30`): `w = 0` is `rho = 1` (`(1, 0)`); otherwise
/// `z = leading_zeros(w)`, `m = w << z`, node
/// `(31 - z) * 16 + ((m >> 27) & 15)`, `f = (m >> 11) & 0xFFFF`, both
/// interpolated upwards; `Kdot = 2^15 - (c + 2) >> 2` from the Q17
/// `c = 1 - Kdot`.
#[inline]
#[allow(clippy::arithmetic_side_effects)] // z <= 31; node index <= 511; c <= 2^15
fn w_coefficients(w_q31: u32) -> (u32, u32) {
    if w_q31 == 0 {
        return (ONE_Q15 as u32, 0);
    }
    let z = leading_zeros(w_q31) & 31;
    let m = w_q31 << z;
    let (lo, hi) = nodes(
        &W_TABLE,
        ((31 - z) as usize) * W_PER_OCTAVE + ((m >> 27) & 15) as usize,
    );
    let f = (m >> 11) & 0xFFFF;
    let c = lerp_up(lo & 0xFFFF, hi & 0xFFFF, f);
    (
        ONE_Q15 as u32 - ((c + 2) >> 2),
        lerp_up(lo >> 16, hi >> 16, f),
    )
}

/// The ReLU step at one position: `(Khat, Thetahat)` from `(K, Theta, q_z,
/// q_x)`, exactly (`hi(x)` is the high word of a 64-bit `x`):
///
/// ```text
/// a = |K|
/// q_z q_x == 0:   rho = 0:  kd = 1/2 (16384),  Khat = 0
/// a^2 >= q_z q_x: |rho| = 1: kd = 1, Khat = a (K > 0);  kd = 0, Khat = 0 (K <= 0)
/// otherwise:
///   cz = lz(q_z) & !1,  cx = lz(q_x) & !1,  n = cz + cx
///   P  = (q_z << cz) (q_x << cx)                  (u64, in [2^60, 2^64))
///   P < 2^62:  P = P << 2,  n = n + 2            (now P = Q 2^n >= 2^62)
///   h  = n / 2,  Qn = hi(P)                        (Qn in [2^30, 2^32))
///   R  = rsqrt_q46(Qn)                             ~ 2^46 / sqrt(Qn)
///   an = a << h                                    (< 2^32 as a^2 < Q)
///   p  = hi(an R)                                  |rho| in Q30
///   p < 3 * 2^28:  (kd, j) = rho table at p (J in Q16)
///                  S = hi(Qn R),  t = hi((S << 2) (j << 16))    (sqrt(Q) J 2^h)
///                  Khat = t if h = 0, else ((t >> (h - 1)) + 1) >> 1
///   else:          Dn = hi(P - an^2)                          (exact residual)
///                  w  = hi((hi((Dn << 1) R) << 2) R)        (1 - rho^2 in Q31)
///                  (kd, g) = w table at w (G - 1 in Q19)
///                  Khat = a + ((a g + 2^18) >> 19)            (|K| G)
///   K < 0:  kd = 32768 - kd,  Khat = max(Khat - a, 0)
/// Thetahat = (Theta kd + 2^14) >> 15               (i64, arithmetic shift)
/// Khat     = min(Khat, i32::MAX)
/// ```
///
/// Every product is 32 x 32 -> 64 bits and cannot overflow; every step
/// rounds down or to nearest as written. Within the bounds of
/// `kernel_bounds` `Khat <= max(q_z, q_x)` and `|Thetahat| <= |Theta|`.
#[inline(always)]
pub fn relu_step(k: i32, theta: i32, q_z: u32, q_x: u32) -> (i32, i32) {
    let (khat, thetahat) = relu_step_unclamped(k, theta, q_z, q_x);
    (khat.min(i32::MAX as u32) as i32, thetahat)
}

/// [`relu_step`] before its last line: `Khat` as a u32 (`<= sqrt(Q) + 1/2
/// < 2^32`). The kernel, whose bounds keep `Khat <= max(q_z, q_x) < 2^31`,
/// casts it directly.
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // each step's range is stated beside it
pub(crate) fn relu_step_unclamped(k: i32, theta: i32, q_z: u32, q_x: u32) -> (u32, i32) {
    let a = k.unsigned_abs(); // <= 2^31
    let (kdot, khat) = if q_z == 0 || q_x == 0 {
        (ONE_Q15 as u32 / 2, 0)
    } else if mul_wide(a, a) >= mul_wide(q_z, q_x) {
        if k > 0 { (ONE_Q15 as u32, a) } else { (0, 0) }
    } else {
        let (cz, cx) = (leading_zeros(q_z) & !1, leading_zeros(q_x) & !1);
        // Both factors in [2^30, 2^32): the product in [2^60, 2^64).
        let mut p = mul_wide(q_z << cz, q_x << cx);
        let mut n = cz + cx;
        if p < 1 << 62 {
            p <<= 2;
            n += 2;
        }
        let h = n / 2; // <= 31: n <= 62 since Q >= 1
        let qn = (p >> 32) as u32; // [2^30, 2^32)
        let r = rsqrt_q46(qn); // <= 2^31
        // a^2 < Q: (a 2^h)^2 < Q 2^n = P < 2^64, so an fits.
        let an = a << h;
        // hi(an R) = a 2^h R / 2^32 <= a / sqrt(Q) 2^30 (R never exceeds
        // 2^46 / sqrt(Qn)): |rho| in Q30, below 2^30 as a^2 < Q.
        let rho = high_word(an, r);
        let (kd, khat) = if rho < RHO_SPLIT {
            let (kd, j) = rho_coefficients(rho);
            // S <= sqrt(Qn) 2^14 < 2^30; t = (S j) >> 14 < 2^32 (j < 2^16).
            let t = high_word(high_word(qn, r) << 2, j << 16);
            (kd, if h == 0 { t } else { ((t >> (h - 1)) + 1) >> 1 })
        } else {
            // an^2 < P; the difference is exact. rho >= 3/4 (R is one-sided)
            // gives w = Dn / Qn <= 7/16: Dn < 2^31, and
            // x = (Dn R) >> 31 ~ w sqrt(Qn) 2^15 < 2^30.
            let dn = ((p - mul_wide(an, an)) >> 32) as u32;
            let x = high_word(dn << 1, r);
            let w = high_word(x << 2, r);
            let (kd, g) = w_coefficients(w);
            // a g < 2^31 * 2^16; the result <= |K| G <= sqrt(Q).
            (kd, a + ((mul_wide(a, g) + (1 << 18)) >> 19) as u32)
        };
        if k < 0 {
            (ONE_Q15 as u32 - kd, khat.saturating_sub(a))
        } else {
            (kd, khat)
        }
    };
    (khat, scale_q15(theta, kdot))
}

/// `(theta kd + 2^14) >> 15` (arithmetic shift) for `kd <= 2^15`: between
/// 0 and `theta`, rounded, so it fits an i32. ARMv6-M splits `theta` into
/// 16-bit halves (`theta = t_h 2^16 + t_l`, `0 <= t_l < 2^16`): `t_h kd
/// 2^16` is a multiple of `2^15`, so the result is `2 t_h kd + ((t_l kd +
/// 2^14) >> 15)`, two 32-bit products instead of a 64-bit one; the same
/// integer on every target (tested).
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // |t_h kd| <= 2^30, t_l kd + 2^14 < 2^31
fn scale_q15(theta: i32, kd: u32) -> i32 {
    #[cfg(all(target_arch = "arm", not(target_has_atomic = "32")))]
    {
        scale_q15_halves(theta, kd)
    }
    #[cfg(not(all(target_arch = "arm", not(target_has_atomic = "32"))))]
    {
        // |Theta| <= 2^31, kd <= 2^15: |product| <= 2^46 (kd as an i32:
        // one signed 32 x 32 -> 64 multiply).
        ((i64::from(theta) * i64::from(kd as i32) + (1 << 14)) >> 15) as i32
    }
}

/// [`scale_q15`] from 32-bit products (ARMv6-M's).
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // see scale_q15
#[cfg_attr(
    not(any(test, all(target_arch = "arm", not(target_has_atomic = "32")))),
    allow(dead_code)
)]
fn scale_q15_halves(theta: i32, kd: u32) -> i32 {
    let kd = kd.min(ONE_Q15 as u32) as i32;
    let (high, low) = (theta >> 16, theta & 0xFFFF);
    2 * high * kd + ((low * kd + (1 << 14)) >> 15)
}

/// Requantises a layer-1 patch projection `u = P . W` to the i8 range:
/// `clamp((u * u_mult + 2^23) >> 24, -127, 127)` (i64 product, arithmetic
/// shift, so the rounding is half up).
pub fn requantise(u: i32, u_mult: u32) -> i8 {
    // |u| <= 2^31 and u_mult < 2^32: |u * u_mult| <= 2^63 - 2^32, so adding
    // 2^23 cannot overflow an i64.
    #[allow(clippy::arithmetic_side_effects)]
    let v = (i64::from(u) * i64::from(u_mult) + (1 << 23)) >> 24;
    // Clamped into i8 range first, so the cast is exact.
    v.clamp(-127, 127) as i8
}

/// Largest `|u|` of a grayscale patch projection (`9 * 255 * 128`), the
/// range [`requantise_small`] accepts.
pub const SMALL_U_LIMIT: i32 = 9 * 255 * 128;

/// Largest `u_mult` [`requantise_small`] accepts.
pub const SMALL_MULT_LIMIT: u32 = (1 << 23) - 1;

/// [`requantise`] with 32-bit products only (no 32 x 32 -> 64 multiply,
/// which ARMv6-M lacks), for `|u| <= SMALL_U_LIMIT` and `u_mult <=
/// SMALL_MULT_LIMIT`, given `u_mult = mh 2^12 + ml` (`ml < 2^12`):
/// `floor((u m + 2^23) / 2^24) = (u mh + ((u ml + 2^23) >> 12)) >> 12`
/// (arithmetic shifts; exact, as `floor((A 2^12 + B) / 2^24) =
/// floor((A + floor(B / 2^12)) / 2^12)` for integer `A`), then the same
/// clamp. Bit-identical to [`requantise`] in that range.
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // |u mh| < 2^30, |u ml| + 2^23 < 2^31 in range
pub fn requantise_small(u: i32, mh: i32, ml: i32) -> i32 {
    ((u * mh + ((u * ml + (1 << 23)) >> 12)) >> 12).clamp(-127, 127)
}

/// Worst-case magnitudes of the integer recursion for a model, used by
/// `Model::from_bytes` to reject models whose maps would not fit the
/// integer types (see `docs/blob-format.md`, "Integer ranges").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KernelBounds {
    /// Largest possible value of any `q^l`, `|K^l|` or `Khat^l` (`B_L`).
    pub map_max: u64,
    /// Largest possible `|kernel(z, x)|` of one pair.
    pub pair_max: u64,
}

/// Largest `|u| = |P . W|` the i32 accumulation may reach.
pub(crate) const U_LIMIT: u64 = i32::MAX as u64;

/// Largest per-pair kernel value accepted, so that `alpha * kernel` (with
/// `|alpha| <= 2^15`) fits an i64 with room to spare.
pub(crate) const PAIR_LIMIT: u64 = 1 << 47;

/// `B_1 = r * 127^2`, `B_l = 9 B_{l-1}`; requires `L * B_L <= i32::MAX`
/// (every `q`, `K`, `Khat`, `Theta`, `Thetahat` map fits an i32) and
/// `positions_L * (L + 1) * B_L <= 2^47`. `None` when a bound is exceeded.
#[allow(clippy::arithmetic_side_effects)] // only the loop counter, l < depth
pub(crate) const fn kernel_bounds(
    rank: u64,
    depth: u64,
    final_positions: u64,
) -> Option<KernelBounds> {
    let Some(mut b) = rank.checked_mul(127 * 127) else {
        return None;
    };
    let mut l = 1;
    while l < depth {
        b = match b.checked_mul(9) {
            Some(v) if v <= i32::MAX as u64 => v,
            _ => return None,
        };
        l += 1;
    }
    match depth.checked_mul(b) {
        Some(v) if v <= i32::MAX as u64 => {}
        _ => return None,
    }
    let pair = match depth.checked_add(1) {
        Some(d1) => match d1.checked_mul(b) {
            Some(v) => v.checked_mul(final_positions),
            None => None,
        },
        None => None,
    };
    match pair {
        Some(p) if p <= PAIR_LIMIT => Some(KernelBounds {
            map_max: b,
            pair_max: p,
        }),
        _ => None,
    }
}

// Tests: an overflow panics the test, which is the failure we want.
#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used
)]
mod tests {
    extern crate std;
    use super::*;
    use core::f64::consts::PI;
    use std::vec::Vec;

    fn kdot_f64(x: f64) -> f64 {
        (PI - x.clamp(-1.0, 1.0).acos()) / PI
    }

    fn j_f64(x: f64) -> f64 {
        let x = x.clamp(-1.0, 1.0);
        ((1.0 - x * x).max(0.0).sqrt() + (PI - x.acos()) * x) / PI
    }

    /// `G = J / rho` as a function of `w = 1 - rho^2`, `rho >= 0`.
    fn g_f64(w: f64) -> f64 {
        let rho = (1.0 - w).sqrt();
        (w.sqrt() + (PI - w.sqrt().asin()) * rho) / (PI * rho)
    }

    fn fixed(v: f64, bits: i32) -> u32 {
        (v * 2f64.powi(bits)).round() as u32
    }

    /// Largest amount by which the chord over `[x0, x1]` exceeds `f`.
    fn chord_gap(f: impl Fn(f64) -> f64, x0: f64, x1: f64) -> f64 {
        (0..=4096)
            .map(|s| {
                let t = f64::from(s) / 4096.0;
                f(x0) * (1.0 - t) + f(x1) * t - f(x0 + (x1 - x0) * t)
            })
            .fold(0.0, f64::max)
    }

    /// Node values lowered by enough (per node, the larger gap of its two
    /// intervals, plus `extra`) that the interpolated chord stays below `f`.
    fn below_chords(f: impl Fn(f64) -> f64 + Copy, xs: &[f64], extra: f64) -> Vec<f64> {
        let gaps: Vec<f64> = xs.windows(2).map(|w| chord_gap(f, w[0], w[1])).collect();
        (0..xs.len())
            .map(|i| {
                let left = if i > 0 { gaps[i - 1] } else { 0.0 };
                let right = gaps.get(i).copied().unwrap_or(0.0);
                f(xs[i]).floor() - (left.max(right).ceil() + extra)
            })
            .collect()
    }

    fn w_nodes() -> Vec<f64> {
        let mut xs: Vec<f64> = (0..W_OCTAVES)
            .flat_map(|e| {
                (0..W_PER_OCTAVE)
                    .map(move |s| 2f64.powi(e as i32 - 31) * (1.0 + s as f64 / W_PER_OCTAVE as f64))
            })
            .collect();
        xs.push(0.5);
        xs
    }

    fn rho_table() -> Vec<u32> {
        (0..RHO_NODES)
            .map(|i| {
                let r = i as f64 / 128.0;
                fixed(kdot_f64(r) - 0.5, 17) | fixed(j_f64(r), 16) << 16
            })
            .collect()
    }

    fn w_table() -> Vec<u32> {
        let xs = w_nodes();
        let g = below_chords(|w| (g_f64(w) - 1.0) * 2f64.powi(19), &xs, 0.0);
        let mut t: Vec<u32> = xs
            .iter()
            .zip(g)
            .map(|(&w, g)| fixed(w.sqrt().asin() / PI, 17) | (g.max(0.0) as u32) << 16)
            .collect();
        let last = t[t.len() - 1];
        t.resize(W_NODES, last);
        t
    }

    fn rsqrt_table() -> Vec<u32> {
        let xs: Vec<f64> = (128..RSQRT_NODES)
            .map(|i| 2f64.powi(23) * i as f64)
            .collect();
        // 2: the interpolation rounds its step down, one unit up at most.
        let mut t = std::vec![0u32; 128];
        t.extend(
            below_chords(|x| 2f64.powi(46) / x.sqrt(), &xs, 2.0)
                .into_iter()
                .map(|v| v as u32),
        );
        t
    }

    #[test]
    fn tables_match_formulas() {
        let (rho, w, rsqrt) = (rho_table(), w_table(), rsqrt_table());
        if std::env::var_os("CONVRFM_PRINT_TABLES").is_some() {
            std::println!("RHO {rho:?}\nW {w:?}\nRSQRT {rsqrt:?}");
        }
        assert_eq!(rho, RHO_TABLE.to_vec(), "RHO_TABLE is stale");
        assert_eq!(w, W_TABLE.to_vec(), "W_TABLE is stale");
        assert_eq!(rsqrt, RSQRT_TABLE.to_vec(), "RSQRT_TABLE is stale");
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn rsqrt_is_one_sided_and_close() {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut worst = 0.0f64;
        let mut check = |x: u32| {
            let exact = 2f64.powi(46) / f64::from(x).sqrt();
            let r = f64::from(rsqrt_q46(x));
            assert!(r <= exact, "x = {x}: {r} > {exact}");
            worst = worst.max(1.0 - r / exact);
        };
        for _ in 0..2_000_000 {
            check((xorshift(&mut s) as u32) | 1 << 30);
        }
        // Every node, its neighbours, and the ends.
        for i in 128..RSQRT_NODES as u32 - 1 {
            let x = i << 23;
            for d in [0, 1, 127, 128, 1 << 22, (1 << 23) - 1] {
                check(x + d);
            }
        }
        check(u32::MAX);
        std::println!("rsqrt_q46: worst relative shortfall {worst:.2e}");
        assert!(worst < 1.2e-5, "{worst:e}");
    }

    #[test]
    fn g_is_one_sided_and_close() {
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        let (mut wk, mut wg) = (0.0f64, 0.0f64);
        for n in 0..2_000_000u32 {
            // Log-uniform over every octave (w < 1/2 in Q31), plus the ends.
            let w = match n {
                0 => 1,
                1 => (1 << 30) - 1,
                _ => (xorshift(&mut s) as u32 >> 2) >> (xorshift(&mut s) % 30),
            }
            .max(1);
            let wf = f64::from(w) / 2f64.powi(31);
            let (kd, g) = w_coefficients(w);
            let exact_g = (g_f64(wf) - 1.0) * 2f64.powi(19);
            assert!(f64::from(g) <= exact_g, "w = {w}: G - 1 {g} > {exact_g}");
            wg = wg.max((exact_g - f64::from(g)) / 2f64.powi(19));
            wk = wk.max((f64::from(kd) / 32768.0 - (1.0 - wf.sqrt().asin() / PI)).abs());
        }
        std::println!("w table: worst |Kdot err| {wk:.2e}, worst G shortfall {wg:.2e}");
        assert!(wk < 5e-5 && wg < 5e-5, "{wk:e} {wg:e}");
    }

    /// Worst errors of `Kdot` (read as `Thetahat` of `Theta = 2^15`) and of
    /// `Khat / sqrt(Q)` beyond its rounding to an integer, against f64 at
    /// the exact `rho`.
    fn errors(k: i64, qz: u32, qx: u32) -> (f64, f64) {
        let s = (f64::from(qz) * f64::from(qx)).sqrt();
        let rho = k as f64 / s;
        let (khat, kd) = relu_step(k as i32, ONE_Q15, qz, qx);
        let ek = (f64::from(kd) / 32768.0 - kdot_f64(rho)).abs();
        let ej = ((f64::from(khat) - s * j_f64(rho)).abs() - 0.5).max(0.0) / s;
        (ek, ej)
    }

    fn sweep_errors(q: u32) -> (f64, f64) {
        let qi = i64::from(q);
        let mut ks: Vec<i64> = Vec::new();
        // Uniform over [-q, q] ...
        let steps = 1 << 17;
        for i in 0..=steps {
            ks.push(-qi + (2 * qi * i) / steps);
        }
        // ... and geometric toward both ends, where the slopes are singular.
        let mut d = 1i64;
        while d < qi {
            for m in [d, d + d / 3, d + d / 2] {
                if m <= qi {
                    ks.push(qi - m);
                    ks.push(-qi + m);
                }
            }
            d *= 2;
        }
        ks.into_iter()
            .map(|k| errors(k, q, q))
            .fold((0.0, 0.0), |(a, b), (x, y)| (a.max(x), b.max(y)))
    }

    #[test]
    fn coefficients_within_1e4_everywhere() {
        for q in [3u32, 1000, 65_537, (1 << 30) - 3, i32::MAX as u32] {
            let (wk, wj) = sweep_errors(q);
            std::println!(
                "q = {q}: worst |Kdot err| = {wk:.2e}, worst |Khat err| / sqrt Q = {wj:.2e}"
            );
            assert!(wk < 1e-4 && wj < 1e-4, "q = {q}: {wk:e} {wj:e}");
        }
    }

    #[test]
    fn coefficients_unequal_variances() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let (mut wk, mut wj) = (0.0f64, 0.0f64);
        for _ in 0..400_000 {
            let qz = (xorshift(&mut state) % (1 << 30)) as u32 + 1;
            let qx = (xorshift(&mut state) % u64::from(qz.min(1 << 20) * 4 + 7)) as u32 + 1;
            let s = (f64::from(qz) * f64::from(qx)).sqrt();
            let kmax = s.floor() as i64;
            let k = match xorshift(&mut state) % 4 {
                0 => kmax - (xorshift(&mut state) % 64) as i64,
                1 => -kmax + (xorshift(&mut state) % 64) as i64,
                _ => (xorshift(&mut state) % (2 * kmax as u64 + 1)) as i64 - kmax,
            };
            let (ek, ej) = errors(k, qz, qx);
            wk = wk.max(ek);
            wj = wj.max(ej);
            // The bound the range proof of `kernel_bounds` rests on.
            let (khat, th) = relu_step(k as i32, -7_777_777, qz, qx);
            assert!(
                khat >= 0 && khat as u32 <= qz.max(qx),
                "{k} {qz} {qx}: {khat}"
            );
            assert!((-7_777_777..=0).contains(&th));
        }
        std::println!("random: Kdot {wk:.2e}, (|Khat err| - 1/2) / sqrt(Q) {wj:.2e}");
        assert!(wk < 1e-4 && wj < 1e-4);
    }

    #[test]
    fn exact_corners() {
        // Self-pair: rho = 1 exactly, Khat = q, Thetahat = Theta.
        for q in [1u32, 2, 9, 12_345, 145_161, i32::MAX as u32] {
            assert_eq!(relu_step(q as i32, -77, q, q), (q as i32, -77));
            // Anti-aligned: rho = -1, Khat = 0, Kdot = 0.
            assert_eq!(relu_step(-(q as i32), 1000, q, q), (0, 0));
        }
        // Zero variance: rho = 0, Kdot = 1/2, Khat = 0.
        assert_eq!(relu_step(0, 10, 0, 5), (0, 5));
        assert_eq!(relu_step(0, 0, 7, 0), (0, 0));
        // Orthogonal: Kdot = 1/2 exactly, Khat = sqrt(Q) / pi.
        let (khat, kd) = relu_step(0, ONE_Q15, 1 << 20, 1 << 20);
        assert_eq!(kd, ONE_Q15 / 2);
        assert!(
            (f64::from(khat) - 2f64.powi(20) / PI).abs() < 20.0,
            "{khat}"
        );
        // Extreme inputs do not panic and stay in range.
        for (k, t, a, b) in [
            (i32::MIN, i32::MIN, u32::MAX, u32::MAX),
            (i32::MAX, i32::MAX, u32::MAX, 1),
            (-1, i32::MIN, 1, u32::MAX),
            (i32::MIN + 1, 5, u32::MAX, u32::MAX),
        ] {
            let (khat, th) = relu_step(k, t, a, b);
            assert!(khat >= 0 && (th == 0 || th.signum() == t.signum()));
        }
    }

    #[test]
    fn requantise_rounds_and_clamps() {
        let one = 1u32 << 24;
        assert_eq!(requantise(5, one), 5);
        assert_eq!(requantise(-5, one), -5);
        assert_eq!(requantise(300, one), 127);
        assert_eq!(requantise(-300, one), -127);
        // 1.5 -> 2 and -1.5 -> -1 (half up).
        assert_eq!(requantise(3, one / 2), 2);
        assert_eq!(requantise(-3, one / 2), -1);
        assert_eq!(requantise(i32::MAX, u32::MAX), 127);
        assert_eq!(requantise(i32::MIN, u32::MAX), -127);
        assert_eq!(requantise(i32::MIN + 1, u32::MAX), -127);
    }

    #[test]
    fn leading_zeros_search_is_leading_zeros() {
        let mut st = 0x0123_4567_89AB_CDEFu64;
        for x in [
            0u32,
            1,
            2,
            3,
            0xFFFF,
            0x1_0000,
            u32::MAX >> 1,
            1 << 31,
            u32::MAX,
        ] {
            assert_eq!(leading_zeros_search(x), x.leading_zeros(), "{x}");
        }
        for _ in 0..100_000 {
            let x = xorshift(&mut st) as u32 >> (xorshift(&mut st) % 32);
            assert_eq!(leading_zeros_search(x), x.leading_zeros(), "{x}");
        }
    }

    #[test]
    fn mul_halves_is_the_product() {
        let mut st = 0xDEAD_BEEF_1234_5678u64;
        let edges = [
            0u32,
            1,
            0xFFFF,
            0x1_0000,
            0x7FFF_FFFF,
            0x8000_0000,
            u32::MAX,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(mul_halves(a, b), u64::from(a) * u64::from(b));
            }
        }
        for _ in 0..200_000 {
            let (a, b) = (xorshift(&mut st) as u32, xorshift(&mut st) as u32);
            assert_eq!(mul_halves(a, b), u64::from(a) * u64::from(b));
        }
    }

    /// ARMv6-M's 16-bit-halves `scale_q15` is the 64-bit formula's integer
    /// for every `Theta` edge and `kd` in `0..=2^15`.
    #[test]
    fn scale_q15_halves_is_the_wide_formula() {
        let wide = |t: i32, kd: u32| ((i64::from(t) * i64::from(kd) + (1 << 14)) >> 15) as i32;
        let mut st = 0x0BAD_5EED_0000_0001u64;
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -65_537,
            -65_536,
            -1,
            0,
            1,
            65_535,
            65_536,
            i32::MAX,
        ];
        for kd in 0..=ONE_Q15 as u32 {
            for &t in &edges {
                assert_eq!(scale_q15_halves(t, kd), wide(t, kd), "{t} {kd}");
            }
            let t = xorshift(&mut st) as u32 as i32;
            assert_eq!(scale_q15_halves(t, kd), wide(t, kd), "{t} {kd}");
            assert_eq!(scale_q15(t, kd), wide(t, kd));
        }
    }

    #[test]
    fn requantise_small_matches_requantise() {
        let mut st = 0x1234_5678_9ABC_DEF1u64;
        let mut mults: Vec<u32> = std::vec![1, 2, 3, 255, 4095, 4096, 1 << 16, SMALL_MULT_LIMIT];
        mults.extend(
            (0..300).map(|_| (xorshift(&mut st) as u32 >> 9 >> (xorshift(&mut st) % 23)).max(1)),
        );
        for m in mults {
            let (mh, ml) = ((m >> 12) as i32, (m & 0xFFF) as i32);
            let check = |u: i32| {
                assert_eq!(
                    requantise_small(u, mh, ml),
                    i32::from(requantise(u, m)),
                    "u = {u}, m = {m}"
                );
            };
            for u in [-SMALL_U_LIMIT, -SMALL_U_LIMIT + 1, -1, 0, 1, SMALL_U_LIMIT] {
                check(u);
            }
            // Around every rounding boundary near the clamp and zero.
            for v in [-128i64, -127, -126, -1, 0, 1, 126, 127] {
                let u0 = ((v << 24) - (1 << 23)) / i64::from(m);
                for d in -3..=3 {
                    let u = (u0 + d).clamp(-i64::from(SMALL_U_LIMIT), i64::from(SMALL_U_LIMIT));
                    check(u as i32);
                }
            }
            for _ in 0..3000 {
                check((xorshift(&mut st) % (2 * SMALL_U_LIMIT as u64 + 1)) as i32 - SMALL_U_LIMIT);
            }
        }
    }

    #[test]
    fn bounds() {
        // 28x28, depth 3, r = 255: fits.
        let b = kernel_bounds(255, 3, 22 * 22).unwrap();
        assert_eq!(b.map_max, 255 * 16129 * 81);
        assert!(kernel_bounds(45, 4, 20 * 20).is_some());
        assert!(kernel_bounds(46, 4, 20 * 20).is_none());
        assert!(kernel_bounds(1, 6, 1).is_none());
        assert!(kernel_bounds(255, 3, u64::MAX).is_none());
    }
}
