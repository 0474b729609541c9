"""The public venue endpoints that the services' defaults name, in one place (settings override
them: testnet, or the exchange sim)."""

from __future__ import annotations

BYBIT_MAINNET_REST = "https://api.bybit.com"
BYBIT_TESTNET_REST = "https://api-testnet.bybit.com"
BYBIT_MAINNET_PUBLIC_WS = "wss://stream.bybit.com/v5/public/linear"
BYBIT_MAINNET_PRIVATE_WS = "wss://stream.bybit.com/v5/private"
BYBIT_TESTNET_PRIVATE_WS = "wss://stream-testnet.bybit.com/v5/private"
DERIBIT = "https://www.deribit.com"

# The local exchange simulator (services/exchange_sim, port 8108): the executor's default venue,
# so that nothing trades real money unless TM_LIVE_TRADING arms it.
EXCHANGE_SIM_REST = "http://127.0.0.1:8108"
EXCHANGE_SIM_PRIVATE_WS = "ws://127.0.0.1:8108/v5/private"
