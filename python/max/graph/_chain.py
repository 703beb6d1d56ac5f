"""Chain values: MAX's tokens for ordering side effects, kept as plain Python objects.

In MAX, side-effecting ops take and return ``!mo.chain`` values. Here side effects are ordered
by program order in the graph's block (docs/architecture.md, Buffers), and no MO op takes a
chain: a :class:`_ChainValue` is a token with no MLIR value, which code written for MAX can
hold, store in :attr:`Graph.device_chains` and pass around. Nothing reads it to order ops, so
setting or replacing a chain never changes what a graph computes.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from max.graph.type import DeviceRef


class _ChainValue:
    """A chain: a token standing for "the side effects before this point".

    Args:
        graph: The graph the chain belongs to.
        device: The device whose effects it orders, or None for a graph-global chain
            (:attr:`Graph.always_ready_chain`).
    """

    __slots__ = ("_device", "_graph")

    def __init__(self, graph: Any, device: DeviceRef | None = None) -> None:
        if device is not None and not isinstance(device, DeviceRef):
            raise TypeError(f"_ChainValue: device must be a DeviceRef or None, got "
                            f"{type(device).__name__}")
        self._graph = graph
        self._device = device

    @property
    def graph(self) -> Any:
        """The graph the chain belongs to."""
        return self._graph

    @property
    def device(self) -> DeviceRef | None:
        """The device whose effects the chain orders; None for a graph-global chain."""
        return self._device

    def __repr__(self) -> str:
        where = "always ready" if self._device is None else str(self._device)
        return f"_ChainValue({where}, graph={getattr(self._graph, 'name', None)!r})"


class _DeviceChainMap(MutableMapping[DeviceRef, _ChainValue]):
    """The current chain of each device of a graph: ``DeviceRef -> _ChainValue``.

    Reading a device that has no chain yet creates one for it (each device's chain starts
    ready). Keys must be ``DeviceRef`` and values ``_ChainValue`` of the same graph.
    """

    def __init__(self, graph: Any) -> None:
        self._graph = graph
        self._chains: dict[DeviceRef, _ChainValue] = {}

    def __getitem__(self, device: DeviceRef) -> _ChainValue:
        self._check_key(device)
        chain = self._chains.get(device)
        if chain is None:
            chain = self._chains[device] = _ChainValue(self._graph, device)
        return chain

    def __setitem__(self, device: DeviceRef, chain: _ChainValue) -> None:
        self._check_key(device)
        if not isinstance(chain, _ChainValue):
            raise TypeError(f"device_chains[{device}]: expected a chain value, got "
                            f"{type(chain).__name__}")
        if chain.graph is not self._graph:
            raise ValueError(f"device_chains[{device}]: the chain belongs to another graph")
        self._chains[device] = chain

    def __contains__(self, device: object) -> bool:
        return device in self._chains  # without creating one, as reading would

    def __delitem__(self, device: DeviceRef) -> None:
        del self._chains[device]

    def __iter__(self) -> Iterator[DeviceRef]:
        return iter(self._chains)

    def __len__(self) -> int:
        return len(self._chains)

    @staticmethod
    def _check_key(device: Any) -> None:
        if not isinstance(device, DeviceRef):
            raise TypeError(f"device_chains: keys are DeviceRef, got {type(device).__name__}")

    def __repr__(self) -> str:
        return f"_DeviceChainMap({self._chains!r})"
