"""``est.summary()``: a table of a fitted network's layers and parameters."""

import html

from torch import nn

from .nn._linear import FactoredLayer, LowRankLinear

__all__ = ["ParameterSummary", "summarise"]

COLUMNS = ("layer", "kind", "dictionary", "n_columns", "n_atoms", "alpha_fraction",
           "alpha_learned", "inputs", "units", "dynamic", "static", "bias", "trainable",
           "total")


class ParameterSummary:
    """Every weight layer of a fitted network, one row each, and the totals.

    ``rows`` is a list of dicts with the keys in ``COLUMNS``:

    - ``kind``: "dense", "predicted" (U fixed), "lowrank" (U and V learned)
      or "output"; ``dictionary``, ``n_columns``, ``n_atoms`` as resolved
      (``"auto"`` never appears), None where they do not apply;
    - ``alpha_fraction``: what was asked; ``alpha_learned``: the learned
      weights over ``inputs * units`` (for a predicted layer ``n_atoms /
      inputs``: alpha rounds to whole atoms), 1.0 for dense layers;
    - ``dynamic``: learned weights (V; W of a dense layer; U and V of a
      lowrank one), ``static``: fixed weights (U), ``bias``: biases;
      ``trainable = dynamic + bias`` is what torch counts in
      ``module_.parameters()``, ``total = trainable + static``.

    ``totals`` sums the counts. ``repr`` is a text table; in a notebook
    it shows as an HTML table; ``pandas.DataFrame(summary.rows)`` makes a
    DataFrame.
    """

    def __init__(self, rows, name):
        self.rows = rows
        self.name = name
        counts = ("dynamic", "static", "bias", "trainable", "total")
        self.totals = {k: sum(r[k] for r in rows) for k in counts}

    def _cells(self):
        def fmt(v):
            if v is None:
                return "-"
            if isinstance(v, float):
                return f"{v:.3g}"
            return f"{v:,}" if isinstance(v, int) else str(v)

        body = [[fmt(r[k]) for k in COLUMNS] for r in self.rows]
        total = ["total"] + [""] * (COLUMNS.index("dynamic") - 1) + [
            fmt(self.totals[k]) for k in COLUMNS[COLUMNS.index("dynamic"):]]
        return body, total

    def __repr__(self):
        body, total = self._cells()
        table = [list(COLUMNS)] + body + [total]
        widths = [max(len(row[j]) for row in table) for j in range(len(COLUMNS))]
        lines = ["  ".join(cell.rjust(w) if j >= 3 else cell.ljust(w)
                           for j, (cell, w) in enumerate(zip(row, widths))).rstrip()
                 for row in table]
        rule = "-" * len(lines[0])
        return "\n".join([self.name, lines[0], rule, *lines[1:-1], rule, lines[-1]])

    def _repr_html_(self):
        body, total = self._cells()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in body + [total])
        return (f"<p>{html.escape(self.name)}</p><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{rows}</tbody></table>")


def _fan_in(layer):
    fan_in = getattr(layer, "fan_in", None)  # PredictedConv2d
    if fan_in is None:
        fan_in = layer.weight[0].numel() if isinstance(layer, nn.Conv2d) else layer.in_features
    return int(fan_in)


def _units(layer):
    return getattr(layer, "out_features", None) or layer.out_channels


def summarise(est):
    """The :class:`ParameterSummary` of a fitted skpred network."""
    layers = est.module_.weight_layers()
    records = list(getattr(est, "layers_", []))
    rows, seen = [], {}
    for i, layer in enumerate(layers):
        output = i == len(layers) - 1
        record = {} if output or i >= len(records) else records[i]
        n_in, units = _fan_in(layer), _units(layer)
        bias = layer.bias.numel() if layer.bias is not None else 0
        if isinstance(layer, FactoredLayer):
            dynamic, static = int(layer.n_dynamic_params), int(layer.n_static_params)
            kind = "lowrank" if isinstance(layer, LowRankLinear) else "predicted"
            n_columns, n_atoms = layer.n_columns, layer.n_atoms
        else:
            dynamic, static = layer.weight.numel(), 0
            kind = "output" if output else "dense"
            n_columns = n_atoms = None
        word = record.get("kind", "hidden")  # the ConvNet's "conv" and "dense"
        seen[word] = seen.get(word, 0) + 1
        name = "output" if output else f"{word} layer {seen[word]}"
        rows.append(dict(
            layer=name, kind=kind, dictionary=record.get("dictionary"),
            n_columns=n_columns, n_atoms=n_atoms,
            alpha_fraction=record.get("alpha_fraction") if kind != "dense" and not output
            else None,
            alpha_learned=dynamic / (n_in * units), inputs=n_in, units=units,
            dynamic=dynamic, static=static, bias=bias, trainable=dynamic + bias,
            total=dynamic + bias + static))
    return ParameterSummary(rows, f"{type(est).__name__} on {est.device_}")
