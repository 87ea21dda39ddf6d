import pytest

from sampan.api.quantity import BINARY_SI, DECIMAL_EXPONENT, DECIMAL_SI, canonical, parse_quantity


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", "0"),
        ("0m", "0"),
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("0.5", "500m"),
        (".5", "500m"),
        ("1.", "1"),
        ("1", "1"),
        ("100m", "100m"),
        ("0.1m", "100u"),
        ("1n", "1n"),
        ("0.0000000001", "1n"),  # finer than nano rounds up
        ("1k", "1k"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("2048", "2048"),
        ("1M", "1M"),
        ("100M", "100M"),
        ("1E", "1E"),
        ("1Ki", "1Ki"),
        ("1024", "1024"),
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("1.5Ki", "1536"),
        ("0.5Ki", "512"),
        ("1.1Ki", "1126400m"),
        ("100Ki", "100Ki"),
        ("8Ei", "9223372036854775807"),  # binary values are capped at the int64 maximum
        ("1e3", "1e3"),
        ("1E3", "1e3"),
        ("12e6", "12e6"),
        ("1e-3", "1e-3"),
        ("5.0e-3", "5e-3"),
        ("-1", "-1"),
        ("-0.5", "-500m"),
        ("-1.5Gi", "-1536Mi"),
        ("+2", "2"),
        (2, "2"),
        (0.1, "100m"),
        (129e6, "129M"),
        (" 1Gi ", "1Gi"),
    ],
)
def test_canonical(text, expected):
    assert canonical(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "quantities must match the regular expression"),
        ("abc", "quantities must match the regular expression"),
        ("1.2.3", "quantities must match the regular expression"),
        ("1 Gi", "quantities must match the regular expression"),
        ("1Zi", "quantities must match the regular expression"),
        ("1e", "unable to parse quantity's suffix"),
        ("1ee3", "unable to parse quantity's suffix"),
        ("1KiB", "quantities must match the regular expression"),
    ],
)
def test_invalid(text, message):
    with pytest.raises(ValueError, match=message):
        parse_quantity(text)


def test_formats():
    assert parse_quantity("1Gi").format == BINARY_SI
    assert parse_quantity("1G").format == DECIMAL_SI
    assert parse_quantity("1e9").format == DECIMAL_EXPONENT
    assert parse_quantity("0.5Ki").format == BINARY_SI
    assert parse_quantity("0.5Mi").format == BINARY_SI
    assert parse_quantity("0.0001Ki").format == DECIMAL_SI  # below 1 it becomes decimal


def test_values_round_up():
    assert parse_quantity("100m").value() == 1
    assert parse_quantity("100m").milli_value() == 100
    assert parse_quantity("1.5").value() == 2
    assert parse_quantity("0.1m").milli_value() == 1
    assert parse_quantity("-0.5").value() == -1
    assert parse_quantity("1Gi").value() == 1073741824
    assert parse_quantity("2").milli_value() == 2000


def test_arithmetic_and_compare():
    a, b = parse_quantity("500m"), parse_quantity("1")
    assert str(a + b) == "1500m"
    assert str(b - a) == "500m"
    assert str(a - b) == "-500m"
    assert a < b and b > a and a <= "0.5" and a == "500m"
    assert parse_quantity("1Gi") == parse_quantity("1024Mi")
    assert str(parse_quantity("1Gi") + parse_quantity("512Mi")) == "1536Mi"
    assert str(parse_quantity("0") + parse_quantity("1Gi")) == "1Gi"  # zero takes the other format
    assert sum([parse_quantity("100m")] * 10, parse_quantity("0")) == 1
    assert str(-parse_quantity("1Ki")) == "-1Ki"
    assert parse_quantity("1") != "garbage"
