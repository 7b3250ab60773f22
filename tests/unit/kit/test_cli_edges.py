"""Small CLI and settings defects of issue #17 item 7, each as a test that failed before."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from recsys_tools import stack


def test_a_closed_pipe_ends_the_cli_quietly() -> None:
    """`recsys recommend ... | head`: no BrokenPipeError traceback, exit 141 (128 + SIGPIPE)."""
    script = textwrap.dedent(
        """
        import argparse, sys
        from recsys_tools import cli

        def flood(args):
            for _ in range(100_000):
                print("x" * 100)
            return 0

        class Parser:
            def parse_args(self, argv):
                return argparse.Namespace(func=flood)

        cli.build_parser = lambda argv: Parser()
        sys.exit(cli.main(["anything"]))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(10)
    proc.stdout.close()  # the reader leaves, like `head`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_each_service_defaults_to_the_port_recsys_up_and_the_gateway_use() -> None:
    from recsys_catalog.settings import CatalogSettings
    from recsys_embedder.settings import EmbedderSettings
    from recsys_gateway.settings import GatewaySettings
    from recsys_retriever import cli as retriever_cli
    from recsys_retriever.settings import RetrieverSettings

    ports = {s.name: s.port for s in stack.SERVICES}
    gw = GatewaySettings()
    assert (
        CatalogSettings.model_fields["port"].default
        == ports["catalog"]
        == int(gw.catalog_target.rsplit(":")[-1])
    )
    assert (
        EmbedderSettings.model_fields["port"].default
        == ports["embedder"]
        == int(gw.embedder_target.rsplit(":")[-1])
    )
    assert (
        RetrieverSettings.model_fields["port"].default
        == ports["retriever"]
        == int(gw.retriever_target.rsplit(":")[-1])
    )
    assert GatewaySettings.model_fields["port"].default == ports["gateway"]
    # `recsys retriever describe` asks the retriever, not the gateway (it defaulted to 50051)
    assert retriever_cli.DEFAULT_PORT == ports["retriever"]
