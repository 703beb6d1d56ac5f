"""Devices: the host ``CPU``, ``Accelerator`` GPUs, their streams, and device specs."""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from max.driver import _gpu


class Device:
    """A device MAX can place tensors on: the host ``CPU`` or an ``Accelerator``.

    Devices are interned: constructing one with a previously used id returns the
    first instance, so devices compare (and hash) by ``label`` and ``id``.
    """

    __slots__ = ("_id", "_stream", "__weakref__")

    _LABEL: ClassVar[str]  # set by each subclass; the label property reads it

    _id: int
    _stream: DeviceStream | None

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        if cls is Device:
            raise TypeError("Device cannot be instantiated directly; use CPU() or Accelerator()")
        return super().__new__(cls)

    def _init(self, id: int) -> None:
        self._id = id
        self._stream = None

    @property
    def label(self) -> str:
        """Returns device label: ``cpu`` for host devices, ``gpu`` for accelerators."""
        return self._LABEL

    @property
    def id(self) -> int:
        """Returns a zero-based device id; always 0 for the CPU."""
        return self._id

    @property
    def api(self) -> str:
        """Returns the API used to program the device: ``cpu``, ``cuda`` or ``hip``."""
        raise NotImplementedError

    @property
    def is_host(self) -> bool:
        """Whether this device is the CPU (host) device."""
        return self.label == "cpu"

    @property
    def architecture_name(self) -> str:
        """Returns the architecture name of the device (``sm_80``, ``gfx942``).

        Raises:
            ValueError: For CPU devices, which have none.
        """
        raise NotImplementedError

    @property
    def is_compatible(self) -> bool:
        """Returns whether this device is compatible with MAX."""
        return True

    @property
    def stats(self) -> dict[str, Any]:
        """Returns utilization data for the device."""
        return {}

    @property
    def default_stream(self) -> DeviceStream:
        """Returns the default stream for this device."""
        if self._stream is None:
            self._stream = DeviceStream(self)
        return self._stream

    def can_access(self, other: Device) -> bool:
        """Checks if this device can directly access memory of another device.

        Args:
            other: The other device to check peer access against.

        Returns:
            True if peer access is possible, False otherwise.
        """
        return self == other

    def synchronize(self) -> None:
        """Ensures all operations on this device complete before returning.

        Work on the host runs synchronously, so there is nothing to wait for.
        """

    @staticmethod
    def cpu(id: int = -1) -> CPU:
        """Returns the host CPU device."""
        return CPU(id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return self.label == other.label and self._id == other._id

    def __hash__(self) -> int:
        return hash((self.label, self._id))

    def __repr__(self) -> str:
        return f"Device(type={self.label},id={self._id})"

    def __str__(self) -> str:
        return f"{self.label}:{self._id}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._id,))


class CPU(Device):
    """Creates a CPU device.

    Example:
        >>> from max import driver
        >>> device = driver.CPU()
        >>> device.id  # the device id is always 0 for CPU devices
        0
    """

    __slots__ = ()
    _LABEL: ClassVar[str] = "cpu"
    _instance: ClassVar[CPU | None] = None

    def __new__(cls, id: int = -1) -> CPU:
        """Creates a CPU device.

        Args:
            id: The device ID to use. Defaults to -1 (the host; CPU ids are always 0).

        Raises:
            ValueError: If ``id`` is neither -1 nor 0.
        """
        if id not in (-1, 0):
            raise ValueError(f"CPU device id must be -1 or 0 (there is one host), got {id!r}")
        device = CPU._instance
        if device is None:
            device = super().__new__(cls)
            device._init(0)
            CPU._instance = device
        return device

    @property
    def api(self) -> str:
        """Returns ``cpu``."""
        return "cpu"

    @property
    def architecture_name(self) -> str:
        """CPU devices have no architecture name.

        Raises:
            ValueError: Always.
        """
        raise ValueError("architecture_name: a CPU device has no accelerator architecture")

    @property
    def stats(self) -> dict[str, Any]:
        """Returns host memory figures in bytes (``total_memory``, ``free_memory``)."""
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            total = os.sysconf("SC_PHYS_PAGES") * page
            free = os.sysconf("SC_AVPHYS_PAGES") * page
        except (ValueError, OSError, AttributeError):
            return {}
        return {"total_memory": total, "free_memory": free}


class Accelerator(Device):
    """Creates an accelerator device with the specified ID and memory limit.

    Provides access to GPU or other hardware accelerators in the system. Repeated
    instantiations with a previously-used device-id still refer to the first such
    instance, so only the first memory limit given for an id is effective.

    Example:
        >>> from max import driver
        >>> if driver.accelerator_count() > 0:
        ...     device = driver.Accelerator(id=0)
    """

    __slots__ = ("_memory_limit",)
    _LABEL: ClassVar[str] = "gpu"
    _memory_limit: int
    _instances: ClassVar[dict[int, Accelerator]] = {}

    def __new__(cls, id: int = -1, device_memory_limit: int = -1) -> Accelerator:
        """Creates an accelerator device.

        Args:
            id: The device ID to use. Defaults to -1, which selects the first available
                accelerator.
            device_memory_limit: The maximum amount of memory in bytes that can be
                allocated on the device. Defaults to 99% of free memory.

        Raises:
            RuntimeError: If the system has no accelerator.
            ValueError: If ``id`` names no accelerator of this system.
        """
        count = accelerator_count()
        if count == 0:
            raise RuntimeError("no accelerator found: accelerator_count() is 0")
        ordinal = 0 if id == -1 else id
        if not isinstance(ordinal, int) or not 0 <= ordinal < count:
            raise ValueError(
                f"accelerator id {id!r} out of range: {count} accelerator(s), ids 0..{count - 1}"
            )
        device = Accelerator._instances.get(ordinal)
        if device is None:
            device = super().__new__(cls)
            device._init(ordinal)
            device._memory_limit = device_memory_limit
            Accelerator._instances[ordinal] = device
        return device

    @property
    def api(self) -> str:
        """Returns ``cuda`` for NVIDIA GPUs, ``hip`` for AMD GPUs."""
        found = _gpu.backend()
        assert found is not None  # an Accelerator exists only when a backend does
        return found.api

    @property
    def architecture_name(self) -> str:
        """Returns the architecture name of the device, e.g. ``sm_90`` or ``gfx942``."""
        return _gpu.architecture_name(self._id)

    @property
    def stats(self) -> dict[str, Any]:
        """Returns device memory figures in bytes (``total_memory``, ``free_memory``)."""
        free, total = _gpu.runtime().mem_info(self._id)
        return {"total_memory": total, "free_memory": free} if total else {}

    @property
    def memory_limit(self) -> int:
        """The ``device_memory_limit`` given at creation (-1: none)."""
        return self._memory_limit

    def synchronize(self) -> None:
        """Ensures all operations on this device (on each of its streams) complete.

        Raises:
            ValueError: If an enqueued operation failed (the message names the driver call).
        """
        for stream in list(DeviceStream._of_device.get(self._id, ())):
            stream.synchronize()

    def can_access(self, other: Device) -> bool:
        """Checks if this device can directly access memory of another device."""
        if self == other:
            return True
        return isinstance(other, Accelerator) and _gpu.can_access_peer(self._id, other._id)


class DeviceStream:
    """Provides access to a stream of execution on a device.

    A stream represents a sequence of operations executed in order. Host work runs
    synchronously, so on the CPU waiting and synchronizing return at once.
    """

    __slots__ = ("_device", "_handle", "__weakref__")

    # Accelerator id -> its live streams (Accelerator.synchronize waits for each).
    _of_device: ClassVar[dict[int, weakref.WeakSet[DeviceStream]]] = {}

    def __init__(self, device: Device) -> None:
        """Creates a new stream of execution associated with ``device``.

        On an accelerator this is a driver stream, created here.
        """
        if not isinstance(device, Device):
            raise TypeError(f"DeviceStream needs a Device, got {type(device).__name__}")
        self._device = device
        self._handle = 0
        if not device.is_host:
            self._handle = _gpu.runtime().stream_create(device.id)
            DeviceStream._of_device.setdefault(device.id, weakref.WeakSet()).add(self)

    @property
    def device(self) -> Device:
        """The device this stream is executing on."""
        return self._device

    @property
    def handle(self) -> int:
        """The driver's stream handle (``CUstream``/``hipStream_t``); 0 on the CPU."""
        return self._handle

    def synchronize(self) -> None:
        """Ensures all operations on this stream complete before returning.

        Raises:
            ValueError: If any enqueued operations had an internal error.
        """
        if self._handle:
            from max.runtime.gpu import GpuError

            try:
                _gpu.runtime().synchronize(self._device.id, self._handle)
            except GpuError as e:
                raise ValueError(f"{self}: {e}") from e

    def wait_for(self, other: DeviceStream | Device) -> None:
        """Ensures all work on ``other`` (a stream, or a device's default stream) completes
        before future work submitted to this stream is scheduled."""
        if not isinstance(other, DeviceStream | Device):
            raise TypeError(
                f"wait_for needs a DeviceStream or a Device, got {type(other).__name__}"
            )
        stream = other.default_stream if isinstance(other, Device) else other
        if stream is self:
            return
        if self._handle and stream._handle and stream._device == self._device:
            _gpu.runtime().wait(self._device.id, self._handle, stream._handle)
        else:  # another device, or the host: wait on the host
            stream.synchronize()

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", 0), 0
        if handle:
            try:
                _gpu.runtime().stream_destroy(self._device.id, handle)
            except Exception:  # noqa: BLE001 (interpreter exit, or a backend since replaced)
                pass

    def __repr__(self) -> str:
        return f"DeviceStream({self._device!r})"

    def __str__(self) -> str:
        return f"stream {self._handle:#x} of {self._device}"


@dataclass(frozen=True)
class DeviceSpec:
    """Specification for a device, containing its ID and type.

    Example:
        >>> from max.driver import DeviceSpec
        >>> DeviceSpec.cpu()
        DeviceSpec(id=-1, device_type='cpu')
    """

    id: int
    """Provided id for this device."""

    device_type: Literal["cpu", "gpu"] = "cpu"
    """Type of specified device."""

    def __post_init__(self) -> None:
        if self.device_type not in ("cpu", "gpu"):
            raise ValueError(f"device_type must be 'cpu' or 'gpu', got {self.device_type!r}")
        if self.device_type == "gpu" and self.id < 0:
            raise ValueError(f"accelerator id must be >= 0, got {self.id}")

    @staticmethod
    def cpu(id: int = -1) -> DeviceSpec:
        """Creates a CPU device specification."""
        return DeviceSpec(id, "cpu")

    @staticmethod
    def accelerator(id: int = 0) -> DeviceSpec:
        """Creates an accelerator (GPU) device specification."""
        return DeviceSpec(id, "gpu")


def accelerator_count() -> int:
    """Returns number of accelerator devices available."""
    return _gpu.device_count()


def accelerator_api() -> str:
    """Returns the API used to program the accelerator (``cpu`` when there is none)."""
    return Accelerator().api if accelerator_count() > 0 else CPU().api


def accelerator_architecture_name() -> str:
    """Returns the architecture name of the accelerator device.

    Raises:
        ValueError: If there is no accelerator (a CPU has no architecture name).
    """
    return (Accelerator() if accelerator_count() > 0 else CPU()).architecture_name


def load_devices(device_specs: Sequence[DeviceSpec]) -> list[Device]:
    """Initialize and return a list of devices, given a list of device specs.

    Raises:
        ValueError: If a spec names an accelerator this system does not have.
    """
    devices: list[Device] = []
    count = accelerator_count()
    for spec in device_specs:
        if spec.device_type == "cpu":
            devices.append(CPU(spec.id))
            continue
        if spec.id >= count:
            found = "no devices were found" if count == 0 else f"only found {count} devices"
            raise ValueError(f"Device {spec.id} was requested but {found}.")
        devices.append(Accelerator(spec.id))
    return devices


def scan_available_devices() -> list[DeviceSpec]:
    """Returns all accelerators if available, else return cpu."""
    count = accelerator_count()
    if count == 0:
        return [DeviceSpec.cpu()]
    return [DeviceSpec.accelerator(i) for i in range(count)]


def devices_exist(devices: list[DeviceSpec]) -> bool:
    """Identify if devices exist: CPUs always do, accelerators when this system has them."""
    available = scan_available_devices()
    return all(spec.device_type == "cpu" or spec in available for spec in devices)
