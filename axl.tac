# -*- test-case-name: tests.test_e2e_twistd -*-
"""
Run a node with C{twistd -ny axl.tac}.

The config is $AXL_CONFIG, else ./node-config.json if present, else the embedded default
(ephemeral key, no peers, HTTP bridge on 127.0.0.1:9002).
"""

from axl.tap import make_application

application = make_application()
