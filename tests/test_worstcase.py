"""
The worst-case memory bound of a configuration (L{axl.worstcase}, issue 12): with the defaults
it stays within the issue's 150 MB, each key it names moves it, and the README states it.
"""

from __future__ import annotations

import os
from dataclasses import replace

from twisted.trial.unittest import SynchronousTestCase

from axl.config import NodeConfig
from axl.worstcase import LINK_BYTES, QUIC_LINK_BYTES, TREE_ENTRY_BYTES, worst_case, worst_case_total

#: The RSS of an idle twistd node (bench/attack.py's first line: 62-64 MB on the development
#: machine, Python 3.11), rounded up.
IDLE_RSS = 65_000_000
#: A node that listens for peers and has three configured peers: the README's example.
EXAMPLE = replace(NodeConfig(), listen=("tls://[::]:9001",), peers=("tls://a:1", "tls://b:2", "tls://c:3"))
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


class WorstCaseTests(SynchronousTestCase):
    def test_defaults_within_150_mb(self) -> None:
        """With the defaults (listening, three peers), the bound plus an idle node is ≤ 150 MB."""
        self.assertLessEqual(IDLE_RSS + worst_case_total(EXAMPLE), 150_000_000)

    def test_every_term_follows_its_keys(self) -> None:
        """Doubling any key a term names raises the total; each term names its keys."""
        keys = ("recv_queue_max_bytes", "tcp_rcv_budget_bytes", "bridge_max_inflight_bytes",
                "bridge_max_requests", "bridge_max_connections", "link_write_budget_bytes",
                "max_inbound_links")  # fmt: skip
        base = worst_case_total(EXAMPLE)
        formulas = " ".join(term.formula for term in worst_case(EXAMPLE))
        for key in keys:
            self.assertIn(key, formulas)
            bigger = replace(EXAMPLE, **{key: 2 * getattr(EXAMPLE, key)})
            self.assertGreater(worst_case_total(bigger), base, key)

    def test_links_count_only_when_listening(self) -> None:
        """Inbound links are counted when the node listens; each configured peer adds a link."""
        quiet = NodeConfig()
        links = {term.what: term.bytes for term in worst_case(quiet)}["the links themselves"]
        self.assertEqual(links, 0)
        # each link: its own figure and its peer's own tree entry
        self.assertEqual(
            worst_case_total(replace(quiet, peers=("tls://a:1",))) - worst_case_total(quiet),
            LINK_BYTES + TREE_ENTRY_BYTES,
        )
        listening = replace(quiet, listen=("tls://[::]:1",))
        self.assertEqual(
            worst_case_total(listening) - worst_case_total(quiet),
            quiet.max_inbound_links * (LINK_BYTES + TREE_ENTRY_BYTES),
        )

    def test_quic_links_cost_more(self) -> None:
        """A quic:// listener counts QUIC's per-link cost and its pending connections."""
        quic = replace(NodeConfig(), listen=("quic://[::]:1",))
        terms = {term.what: term.bytes for term in worst_case(quic)}
        self.assertEqual(terms["the links themselves"], quic.max_inbound_links * QUIC_LINK_BYTES)
        self.assertIn("QUIC connections without a link", terms)

    def test_readme_states_the_figure(self) -> None:
        """The README's worst-case section quotes the example's total, in MiB."""
        with open(README, encoding="utf-8") as f:
            text = f.read()
        figure = f"{worst_case_total(EXAMPLE) / 2**20:.0f} MiB"
        self.assertTrue(figure in text, f"README's worst-case section should say {figure}")
