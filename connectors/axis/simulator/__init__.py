"""A SIMULATED national document axis (not the real one) for tests, demos and benchmarks.

Start it in-process with `await serve(SimulatorConfig(...))`, as a child process with
`start_simulator_process(...)`, or from the command line (`add_arguments` / `run`).
See docs/axis-simulator.md.
"""

from connectors.axis.simulator.cli import add_arguments, main, run
from connectors.axis.simulator.faults import FaultInjector, FaultRule, FaultSpecError
from connectors.axis.simulator.process import SimulatorProcess, start_simulator_process
from connectors.axis.simulator.server import (BANNER, ERROR_CODES, AxisSimulator,
                                              RunningSimulator, SimulatorConfig, serve)

__all__ = [
    "BANNER", "ERROR_CODES", "AxisSimulator", "FaultInjector", "FaultRule", "FaultSpecError",
    "RunningSimulator", "SimulatorConfig", "SimulatorProcess", "add_arguments", "main", "run",
    "serve", "start_simulator_process",
]
