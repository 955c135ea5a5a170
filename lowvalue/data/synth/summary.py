"""What a generator run produced, for the CLI and for tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SynthSummary:
    """Row counts per table and, per pattern, planted instances, lookalikes and linked adverse events."""

    out: Path
    persons: int
    seed: int
    chunk_size: int
    rows: dict[str, int] = field(default_factory=dict)
    patterns: dict[str, dict[str, int]] = field(default_factory=dict)
    triggers: dict[str, int] = field(default_factory=dict)

    def planted(self, pattern: str) -> int:
        return self.patterns.get(pattern, {}).get("planted", 0)

    def lookalikes(self, pattern: str) -> int:
        return self.patterns.get(pattern, {}).get("lookalikes", 0)

    def describe(self) -> str:
        lines = [
            f"synthetic region: {self.persons} persons, seed {self.seed}, chunk size {self.chunk_size} -> {self.out}",
            "rows: " + ", ".join(f"{k} {v}" for k, v in self.rows.items()),
            f"{'pattern':<12} {'planted':>8} {'lookalike':>10} {'(sensitive)':>12} {'context':>8}",
        ]
        for p, c in self.patterns.items():
            lines.append(
                f"{p:<12} {c.get('planted', 0):>8} {c.get('lookalikes', 0):>10} {c.get('lookalikes_sensitive', 0):>12} {c.get('context', 0):>8}"
            )
        lines.append("adverse events: " + ", ".join(f"{k} {v}" for k, v in sorted(self.triggers.items())))
        return "\n".join(lines)
