"""Plain-text and Markdown tables for the command line (no dependency)."""

__all__ = ["render"]


def render(headers, rows, markdown=False, align=None):
    """Renders ``rows`` (lists of cells, converted with str) under ``headers``.

    ``align`` is a string of 'l'/'r' per column (default: first column left, the rest right).
    The text form is aligned for a terminal; the Markdown form is a GitHub table that is also
    aligned, so it reads well as text.
    """
    headers = [str(h) for h in headers]
    rows = [[str(c) for c in row] for row in rows]
    n = len(headers)
    if any(len(r) != n for r in rows):
        raise ValueError("every row must have one cell per header")
    if align is None:
        align = "l" + "r" * (n - 1)
    widths = [max([len(headers[j])] + [len(r[j]) for r in rows]) for j in range(n)]

    def cell(text, j):
        return text.ljust(widths[j]) if align[j] == "l" else text.rjust(widths[j])

    if markdown:
        def line(cells):
            return "| " + " | ".join(cell(c, j) for j, c in enumerate(cells)) + " |"

        rule = "|" + "|".join(
            (":" + "-" * (widths[j] + 1)) if align[j] == "l" else ("-" * (widths[j] + 1) + ":") for j in range(n)
        ) + "|"
        return "\n".join([line(headers), rule] + [line(r) for r in rows])

    def line(cells):
        return "  ".join(cell(c, j) for j, c in enumerate(cells)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule] + [line(r) for r in rows])
