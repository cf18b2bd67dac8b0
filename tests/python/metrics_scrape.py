"""Reads a Prometheus text exposition (format 0.0.4), as torchbricks-server serves it on /metrics.

    scrape = Scrape.fetch("127.0.0.1:8002")
    scrape.samples      # {(name, frozenset({(label, value), ...})): float}
    scrape.types        # {family name: "counter" | "gauge" | "histogram" | ...}
    scrape.total("torchbricks_requests_total", model="readme_dummy", code="OK")  # sum over matches

`parse` is the plain parser; `Scrape` adds lookups that sum every series whose labels include
the ones given, so deltas between two scrapes read `after.total(...) - before.total(...)`.
"""
import math
import re
import urllib.request
from typing import Dict, FrozenSet, Iterator, List, Optional, Tuple

SampleKey = Tuple[str, FrozenSet[Tuple[str, str]]]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class ExpositionError(ValueError):
    """The text is not valid Prometheus text format 0.0.4."""


def _parse_value(text: str, line: str) -> float:
    special = {"+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise ExpositionError(f"bad sample value {text!r} in line {line!r}") from None


def _parse_labels(line: str, at: int) -> Tuple[Dict[str, str], int]:
    """Labels from the '{' at `at`; returns them and the index after the closing '}'."""
    labels: Dict[str, str] = {}
    i = at + 1
    while True:
        while i < len(line) and line[i] in " \t":
            i += 1
        if i < len(line) and line[i] == "}":
            return labels, i + 1
        match = _LABEL_NAME.match(line, i)
        if not match:
            raise ExpositionError(f"bad label name at column {i} in line {line!r}")
        name = match.group(0)
        i = match.end()
        if line[i:i + 2] != '="':
            raise ExpositionError(f"expected =\" after label {name!r} in line {line!r}")
        i += 2
        value = []
        while True:
            if i >= len(line):
                raise ExpositionError(f"unterminated value of label {name!r} in line {line!r}")
            char = line[i]
            if char == "\\":
                if i + 1 >= len(line) or line[i + 1] not in _ESCAPES:
                    raise ExpositionError(f"bad escape in label {name!r} in line {line!r}")
                value.append(_ESCAPES[line[i + 1]])
                i += 2
            elif char == '"':
                i += 1
                break
            else:
                value.append(char)
                i += 1
        if name in labels:
            raise ExpositionError(f"label {name!r} twice in line {line!r}")
        labels[name] = "".join(value)
        if i < len(line) and line[i] == ",":
            i += 1
        elif i < len(line) and line[i] == "}":
            return labels, i + 1
        else:
            raise ExpositionError(f"expected , or }} after label {name!r} in line {line!r}")


def parse_sample(line: str) -> Tuple[str, Dict[str, str], float]:
    """One sample line: (metric name, labels, value); a trailing timestamp is ignored."""
    match = _NAME.match(line)
    if not match:
        raise ExpositionError(f"bad metric name in line {line!r}")
    name = match.group(0)
    i = match.end()
    labels: Dict[str, str] = {}
    if i < len(line) and line[i] == "{":
        labels, i = _parse_labels(line, i)
    rest = line[i:].split()
    if not line[i:i + 1].isspace() or not 1 <= len(rest) <= 2:
        raise ExpositionError(f"expected ' value [timestamp]' in line {line!r}")
    return name, labels, _parse_value(rest[0], line)


def parse(text: str) -> Dict[SampleKey, float]:
    """{(name, frozenset(labels.items())): value} of every sample; ExpositionError on bad text
    or on a series given twice."""
    samples: Dict[SampleKey, float] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, labels, value = parse_sample(line)
        key = (name, frozenset(labels.items()))
        if key in samples:
            raise ExpositionError(f"series given twice: {line!r}")
        samples[key] = value
    return samples


def parse_metadata(text: str, kind: str) -> Dict[str, str]:
    """{family: text} of the '# HELP' (kind "HELP") or '# TYPE' (kind "TYPE") lines."""
    found: Dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0] == "#" and parts[1] == kind:
            found[parts[2]] = parts[3] if len(parts) > 3 else ""
    return found


def fetch_text(address: str, path: str = "/metrics", timeout: float = 10) -> Tuple[str, str]:
    """(body, Content-Type) of GET http://address/path."""
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as response:
        return response.read().decode("utf-8"), response.headers.get("Content-Type", "")


class Scrape:
    """One parsed exposition with lookups by name and a subset of labels."""

    def __init__(self, text: str, content_type: str = "") -> None:
        self.text = text
        self.content_type = content_type
        self.samples = parse(text)
        self.types = parse_metadata(text, "TYPE")
        self.helps = parse_metadata(text, "HELP")

    @classmethod
    def fetch(cls, address: str, timeout: float = 10) -> "Scrape":
        return cls(*fetch_text(address, timeout=timeout))

    def series(self, name: str, **labels: str) -> Iterator[Tuple[Dict[str, str], float]]:
        """(labels, value) of every sample of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        for (sample_name, sample_labels), value in self.samples.items():
            if sample_name == name and wanted <= sample_labels:
                yield dict(sample_labels), value

    def total(self, name: str, **labels: str) -> float:
        """Sum over the matching series (0 when none matches)."""
        return sum(value for _, value in self.series(name, **labels))

    def value(self, name: str, **labels: str) -> Optional[float]:
        """The value of the one series with exactly `labels`; None when absent."""
        return self.samples.get((name, frozenset(labels.items())))

    def names(self) -> List[str]:
        return sorted({name for name, _ in self.samples})

    def type_of(self, family: str) -> Optional[str]:
        """The TYPE of a family; counters are looked up with and without their `_total`."""
        if family in self.types:
            return self.types[family]
        if family.endswith("_total"):
            return self.types.get(family[:-len("_total")])
        return None


def histogram_buckets(scrape: Scrape, name: str, **labels: str) -> List[Tuple[float, float]]:
    """Sorted (le, cumulative count) of the histogram `name` series with exactly `labels`."""
    buckets = []
    for sample_labels, value in scrape.series(name + "_bucket", **labels):
        le = sample_labels.pop("le")
        if sample_labels == labels:
            buckets.append((_parse_value(le, le), value))
    return sorted(buckets)
