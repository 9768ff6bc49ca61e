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
//! of [`kernel_bounds`] assume. The exact definition, step by step, is
//! [`relu_step`]; `docs/blob-format.md` repeats it for the host side.

use core::num::NonZeroU32;

/// `1.0` in Q15.
pub const ONE_Q15: i32 = 1 << 15;

/// `|rho|` in Q30 below which the uniform `rho` table is used (3/4).
const RHO_SPLIT: u32 = 3 << 28;

/// Nodes of [`RHO_TABLE`]: `rho = i / 128`, `i = 0..=96` (0 to 3/4).
pub const RHO_NODES: usize = 97;

/// Octaves of `w` in [`W_TABLE`] (`w` in Q32 below `2^31`) and nodes per
/// octave.
pub const W_OCTAVES: usize = 31;
/// Nodes per octave of `w` in [`W_TABLE`].
pub const W_PER_OCTAVE: usize = 16;
/// Nodes of [`W_TABLE`].
pub const W_NODES: usize = W_OCTAVES * W_PER_OCTAVE + 1;

/// Nodes of [`RSQRT_TABLE`]: `x = 2^23 (128 + i)`, `i = 0..=384`, spanning
/// `[2^30, 2^32]`.
pub const RSQRT_NODES: usize = 385;

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
/// `G = J / rho`), at `w = 2^(e - 32) (1 + s / 16)` for octave `e = 0..=30`
/// and `s = 0..=15`, then `w = 1/2`; in Q17 and Q19, packed
/// `(1 - Kdot) | (G - 1) << 16`. `1 - Kdot` is rounded to nearest; `G - 1`
/// is rounded down by enough that the linear interpolation never exceeds
/// the true value. Regenerated by `tables_match_formulas`.
#[rustfmt::skip]
pub const W_TABLE: [u32; W_NODES] = [
    1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1,
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
    2345828352,
];

/// `2^46 / sqrt(x)` at `x = 2^23 (128 + i)`, `i = 0..=384`, rounded down by
/// enough that the linear interpolation of [`rsqrt_q46`] never exceeds the
/// true value. Regenerated by `tables_match_formulas`.
#[rustfmt::skip]
pub const RSQRT_TABLE: [u32; RSQRT_NODES] = [
    2147471350, 2139131576, 2130888449, 2122739887, 2114684096, 2106719327, 2098843881, 2091056100,
    2083354368, 2075737113, 2068202803, 2060749943, 2053377075, 2046082780, 2038865670, 2031724395,
    2024657636, 2017664106, 2010742548, 2003891737, 1997110476, 1990397595, 1983751954, 1977172437,
    1970657956, 1964207444, 1957819863, 1951494196, 1945229448, 1939024649, 1932878849, 1926791118,
    1920760547, 1914786249, 1908867352, 1903003006, 1897192378, 1891434654, 1885729033, 1880074738,
    1874471001, 1868917074, 1863412224, 1857955732, 1852546894, 1847185020, 1841869435, 1836599477,
    1831374496, 1826193857, 1821056935, 1815963120, 1810911811, 1805902422, 1800934374, 1796007103,
    1791120055, 1786272683, 1781464456, 1776694849, 1771963347, 1767269445, 1762612650, 1757992473,
    1753408438, 1748860075, 1744346926, 1739868537, 1735424465, 1731014273, 1726637534, 1722293826,
    1717982737, 1713703859, 1709456794, 1705241150, 1701056541, 1696902587, 1692778918, 1688685165,
    1684620971, 1680585980, 1676579843, 1672602220, 1668652774, 1664731173, 1660837092, 1656970209,
    1653130212, 1649316788, 1645529634, 1641768447, 1638032935, 1634322805, 1630637771, 1626977552,
    1623341870, 1619730453, 1616143033, 1612579343, 1609039125, 1605522120, 1602028077, 1598556748,
    1595107885, 1591681250, 1588276604, 1584893713, 1581532344, 1578192273, 1574873276, 1571575130,
    1568297619, 1565040528, 1561803646, 1558586766, 1555389682, 1552212191, 1549054095, 1545915197,
    1542795303, 1539694223, 1536611767, 1533547751, 1530501991, 1527474306, 1524464519, 1521472454,
    1518497937, 1515540798, 1512600869, 1509677982, 1506771974, 1503882684, 1501009950, 1498153616,
    1495313528, 1492489530, 1489681471, 1486889203, 1484112578, 1481351450, 1478605676, 1475875114,
    1473159623, 1470459067, 1467773308, 1465102212, 1462445646, 1459803479, 1457175580, 1454561823,
    1451962079, 1449376227, 1446804140, 1444245699, 1441700782, 1439169272, 1436651050, 1434146001,
    1431654010, 1429174964, 1426708753, 1424255264, 1421814390, 1419386023, 1416970055, 1414566382,
    1412174900, 1409795507, 1407428100, 1405072581, 1402728847, 1400396804, 1398076353, 1395767399,
    1393469847, 1391183605, 1388908577, 1386644675, 1384391807, 1382149884, 1379918818, 1377698522,
    1375488907, 1373289891, 1371101389, 1368923315, 1366755589, 1364598128, 1362450851, 1360313680,
    1358186535, 1356069337, 1353962009, 1351864475, 1349776659, 1347698488, 1345629885, 1343570779,
    1341521096, 1339480766, 1337449717, 1335427878, 1333415181, 1331411558, 1329416939, 1327431258,
    1325454449, 1323486445, 1321527180, 1319576592, 1317634615, 1315701187, 1313776246, 1311859727,
    1309951573, 1308051720, 1306160110, 1304276683, 1302401380, 1300534143, 1298674913, 1296823635,
    1294980251, 1293144706, 1291316944, 1289496910, 1287684551, 1285879811, 1284082639, 1282292981,
    1280510785, 1278735999, 1276968573, 1275208455, 1273455595, 1271709944, 1269971452, 1268240070,
    1266515750, 1264798444, 1263088105, 1261384685, 1259688140, 1257998421, 1256315484, 1254639282,
    1252969773, 1251306909, 1249650650, 1248000949, 1246357766, 1244721055, 1243090775, 1241466884,
    1239849342, 1238238105, 1236633133, 1235034386, 1233441824, 1231855407, 1230275095, 1228700850,
    1227132632, 1225570404, 1224014127, 1222463764, 1220919276, 1219380629, 1217847783, 1216320705,
    1214799355, 1213283702, 1211773705, 1210269334, 1208770551, 1207277323, 1205789615, 1204307393,
    1202830624, 1201359274, 1199893310, 1198432700, 1196977411, 1195527410, 1194082667, 1192643148,
    1191208823, 1189779661, 1188355631, 1186936701, 1185522842, 1184114023, 1182710215, 1181311388,
    1179917512, 1178528560, 1177144501, 1175765305, 1174390948, 1173021397, 1171656628, 1170296611,
    1168941319, 1167590724, 1166244800, 1164903521, 1163566857, 1162234785, 1160907278, 1159584308,
    1158265852, 1156951882, 1155642374, 1154337303, 1153036644, 1151740370, 1150448459, 1149160886,
    1147877626, 1146598656, 1145323951, 1144053488, 1142787244, 1141525194, 1140267316, 1139013588,
    1137763987, 1136518489, 1135277073, 1134039714, 1132806394, 1131577089, 1130351777, 1129130437,
    1127913047, 1126699587, 1125490034, 1124284369, 1123082570, 1121884617, 1120690490, 1119500166,
    1118313628, 1117130855, 1115951827, 1114776523, 1113604926, 1112437014, 1111272769, 1110112173,
    1108955205, 1107801846, 1106652080, 1105505885, 1104363245, 1103224141, 1102088554, 1100956466,
    1099827859, 1098702718, 1097581022, 1096462754, 1095347897, 1094236434, 1093128348, 1092023622,
    1090922238, 1089824179, 1088729430, 1087637973, 1086549792, 1085464871, 1084383193, 1083304742,
    1082229503, 1081157459, 1080088595, 1079022895, 1077960343, 1076900923, 1075844622, 1074791422,
    1073741310,
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
/// and at most 1.2e-5 below it (relative):
///
/// ```text
/// i = (x >> 23) - 128,  F = (x << 9) & 0xFFFF0000
/// R = T[i] - (((T[i] - T[i+1]) * F) >> 32)      (u64 product)
/// ```
///
/// `x` below `2^30` reads the first interval (not used by the kernel).
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // T[i] >= T[i+1]; the step <= T[i] - T[i+1]
pub fn rsqrt_q46(x: u32) -> u32 {
    let i = ((x >> 23) as usize).saturating_sub(128).min(RSQRT_NODES - 2);
    let lo = RSQRT_TABLE.get(i).copied().unwrap_or(0);
    let hi = RSQRT_TABLE.get(i + 1).copied().unwrap_or(lo);
    lo - high_word(lo.saturating_sub(hi), (x << 9) & 0xFFFF_0000)
}

/// `(a b) >> 32`: the high word of a 32 x 32-bit product.
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // a b < 2^64
fn high_word(a: u32, b: u32) -> u32 {
    ((u64::from(a) * u64::from(b)) >> 32) as u32
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

/// `(Kdot, G - 1)` in Q15 and Q19 for `w = 1 - rho^2` given in Q32
/// (`w < 2^31`): `w = 0` is `rho = 1` (`(1, 0)`); otherwise
/// `z = leading_zeros(w)`, `m = w << z`, node
/// `(31 - z) * 16 + ((m >> 27) & 15)`, `f = (m >> 11) & 0xFFFF`, both
/// interpolated upwards; `Kdot = 2^15 - (c + 2) >> 2` from the Q17
/// `c = 1 - Kdot`.
#[inline]
#[allow(clippy::arithmetic_side_effects)] // z <= 31 for w > 0; c <= 2^15
fn w_coefficients(w_q32: u32) -> (u32, u32) {
    if w_q32 == 0 {
        return (ONE_Q15 as u32, 0);
    }
    let z = w_q32.leading_zeros();
    let m = w_q32 << z;
    let octave = (31 - z) as usize;
    let (lo, hi) = nodes(
        &W_TABLE,
        octave * W_PER_OCTAVE + ((m >> 27) & 15) as usize,
    );
    let f = (m >> 11) & 0xFFFF;
    let c = lerp_up(lo & 0xFFFF, hi & 0xFFFF, f);
    (ONE_Q15 as u32 - ((c + 2) >> 2), lerp_up(lo >> 16, hi >> 16, f))
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
///                  w  = ((((Dn R) >> 31) R) >> 29)          (1 - rho^2 in Q32)
///                  (kd, g) = w table at w (G - 1 in Q19)
///                  Khat = a + ((a g + 2^18) >> 19)            (|K| G)
///   K < 0:  kd = 32768 - kd,  Khat = max(Khat - a, 0)
/// Thetahat = (Theta kd + 2^14) >> 15               (i64, arithmetic shift)
/// Khat     = min(Khat, i32::MAX)
/// ```
///
/// Every product is 32 x 32 -> 64 bits and cannot overflow; every step
/// rounds down or to nearest as written. Within the bounds of
/// [`kernel_bounds`] `Khat <= max(q_z, q_x)` and `|Thetahat| <= |Theta|`.
#[inline(always)]
#[allow(clippy::arithmetic_side_effects)] // each step's range is stated beside it
pub fn relu_step(k: i32, theta: i32, q_z: u32, q_x: u32) -> (i32, i32) {
    let a = k.unsigned_abs(); // <= 2^31
    let (kdot, khat) = if q_z == 0 || q_x == 0 {
        (ONE_Q15 as u32 / 2, 0)
    } else if u64::from(a) * u64::from(a) >= u64::from(q_z) * u64::from(q_x) {
        if k > 0 { (ONE_Q15 as u32, a) } else { (0, 0) }
    } else {
        let (cz, cx) = (q_z.leading_zeros() & !1, q_x.leading_zeros() & !1);
        // Both factors in [2^30, 2^32): the product in [2^60, 2^64).
        let mut p = u64::from(q_z << cz) * u64::from(q_x << cx);
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
            // an^2 < P; the difference is exact.
            let dn = ((p - u64::from(an) * u64::from(an)) >> 32) as u32;
            // (Dn R) >> 31 < 2^32; times R < 2^63. rho >= 3/4 gives
            // w <= 7/16, so w < 2^31 (the cast saturates for safety).
            let x = (u64::from(dn) * u64::from(r)) >> 31;
            let w = ((x * u64::from(r)) >> 29).min(u64::from(u32::MAX)) as u32;
            let (kd, g) = w_coefficients(w);
            // a g < 2^31 * 2^16; the result <= |K| G <= sqrt(Q).
            (kd, a + ((u64::from(a) * u64::from(g) + (1 << 18)) >> 19) as u32)
        };
        if k < 0 {
            (ONE_Q15 as u32 - kd, khat.saturating_sub(a))
        } else {
            (kd, khat)
        }
    };
    // |Theta| <= 2^31, kd <= 2^15: |product| <= 2^46, and the result is
    // between 0 and Theta (rounded): it fits an i32.
    let thetahat = (i64::from(theta) * i64::from(kdot as i32) + (1 << 14)) >> 15;
    (khat.min(i32::MAX as u32) as i32, thetahat as i32)
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

/// [`requantise`] for one multiplier, with its clamp range worked out once
/// so that the per-patch work is a 32 x 32 multiply and two compares
/// (bit-identical to [`requantise`] for every `u`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requantiser {
    /// `u_mult`, or `i32::MAX` when larger (then only `u = 0` is inside
    /// `(lo, hi)`, whose result is 0 for any multiplier).
    mult: i32,
    /// Largest `u` that gives -127.
    lo: i32,
    /// Smallest `u` that gives 127.
    hi: i32,
}

impl Requantiser {
    /// The clamp range of `u_mult`.
    #[allow(clippy::arithmetic_side_effects)] // m >= 1; quotients < 2^31
    pub fn new(u_mult: NonZeroU32) -> Self {
        let u_mult = u_mult.get();
        let m = i64::from(u_mult);
        // (u m + 2^23) >> 24 >= 127  <=>  u m >= 127 2^24 - 2^23.
        let hi = (127i64 * (1 << 24) - (1 << 23) + m - 1) / m;
        // (u m + 2^23) >> 24 <= -127  <=>  u m < -(126 2^24 + 2^23).
        let lo = -((126i64 * (1 << 24) + (1 << 23)) / m) - 1;
        Self {
            mult: i32::try_from(u_mult).unwrap_or(i32::MAX),
            lo: lo as i32,
            hi: hi as i32,
        }
    }

    /// `requantise(u, u_mult)`.
    #[inline(always)]
    #[allow(clippy::arithmetic_side_effects)] // lo < u < hi: |u mult| < 127 2^24 + mult
    pub fn apply(&self, u: i32) -> i32 {
        if u >= self.hi {
            127
        } else if u <= self.lo {
            -127
        } else {
            ((i64::from(u) * i64::from(self.mult) + (1 << 23)) >> 24) as i32
        }
    }
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
                (0..W_PER_OCTAVE).map(move |s| {
                    2f64.powi(e as i32 - 32) * (1.0 + s as f64 / W_PER_OCTAVE as f64)
                })
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
        xs.iter()
            .zip(g)
            .map(|(&w, g)| fixed(w.sqrt().asin() / PI, 17) | (g.max(0.0) as u32) << 16)
            .collect()
    }

    fn rsqrt_table() -> Vec<u32> {
        let xs: Vec<f64> = (0..RSQRT_NODES)
            .map(|i| 2f64.powi(23) * (128 + i) as f64)
            .collect();
        // 129: the interpolation position drops x's 7 low bits (slope <= 1
        // unit per x) and rounds one unit up.
        below_chords(|x| 2f64.powi(46) / x.sqrt(), &xs, 129.0)
            .into_iter()
            .map(|v| v as u32)
            .collect()
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
        for i in 0..RSQRT_NODES as u32 - 1 {
            let x = (128 + i) << 23;
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
            // Log-uniform over every octave, plus w = 1 and the top.
            let w = match n {
                0 => 1,
                1 => (1 << 31) - 1,
                _ => (xorshift(&mut s) as u32 >> 1) >> (xorshift(&mut s) % 31),
            }
            .max(1);
            let wf = f64::from(w) / 2f64.powi(32);
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
            std::println!("q = {q}: worst |Kdot err| = {wk:.2e}, worst |Khat err| / sqrt Q = {wj:.2e}");
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
            assert!(khat >= 0 && khat as u32 <= qz.max(qx), "{k} {qz} {qx}: {khat}");
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
        assert!((f64::from(khat) - 2f64.powi(20) / PI).abs() < 20.0, "{khat}");
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
    fn requantiser_matches_requantise() {
        let mut st = 0x1234_5678_9ABC_DEF1u64;
        let mut mults: Vec<u32> = std::vec![1, 2, 3, 255, 1 << 16, (1 << 24) - 1, 1 << 24, 1 << 31, u32::MAX];
        mults.extend((0..200).map(|_| (xorshift(&mut st) as u32 >> (xorshift(&mut st) % 32)).max(1)));
        for m in mults {
            let rq = Requantiser::new(NonZeroU32::new(m).unwrap());
            let check = |u: i32| {
                assert_eq!(rq.apply(u), i32::from(requantise(u, m)), "u = {u}, m = {m}");
            };
            for u in [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX, rq.lo, rq.hi] {
                for d in -3..=3 {
                    check(u.saturating_add(d));
                }
            }
            for _ in 0..2000 {
                check(xorshift(&mut st) as i32 >> (xorshift(&mut st) % 32));
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
