"""sinfo / scontrol parsing, on output captured from Slurm 22.05."""

from firecrest_server.scheduler import slurm_cluster as slurm

SINFO = (
    "128:1:1|128|0.44|22597|(null)|node1|127.0.0.1|localhost|idle|debug|1|22.05.8|23593|0/128/0/128\n"
    "128:1:1|128|0.44|22597|(null)|node1|127.0.0.1|localhost|idle|long|1|22.05.8|23593|0/128/0/128\n"
    "2:8:2|32|N/A|100|gpu,a100|node2|10.0.0.2|n2|down*+drain|debug|5|22.05.8|1000|4/28/0/32\n"
)
PARTITION = (
    "PartitionName=debug AllowGroups=ALL Default=YES Hidden=NO MaxTime=UNLIMITED Nodes=node1 "
    "State=UP TotalCPUs=128 TotalNodes=1 TRES=cpu=128,mem=23593M,node=1,billing=128\n"
    "PartitionName=secret Hidden=YES State=DOWN TotalCPUs=4 TotalNodes=1\n"
)


def test_nodes_merge_partitions_and_strip_state_flags() -> None:
    nodes = slurm.parse_nodes(SINFO)
    assert [n.name for n in nodes] == ["node1", "node2"]
    node1, node2 = nodes
    assert node1.partitions == ["debug", "long"]
    assert (node1.sockets, node1.cores, node1.threads, node1.cpus) == (128, 1, 1, 128)
    assert node1.state == ["IDLE"]
    assert node1.features == []
    assert node2.state == ["DOWN", "DRAIN"]
    assert node2.cpu_load is None
    assert (node2.alloc_cpus, node2.idle_cpus) == (4, 28)
    assert node2.features == ["gpu", "a100"]


def test_partitions_hide_hidden_ones_unless_asked() -> None:
    assert [(p.name, p.partition, p.cpus) for p in slurm.parse_partitions(PARTITION)] == [
        ("debug", "UP", 128)
    ]
    assert len(slurm.parse_partitions(PARTITION, show_hidden=True)) == 2


def test_reservations() -> None:
    out = (
        "ReservationName=maint StartTime=100 EndTime=200 Duration=00:01:40 Nodes=node[1-2] "
        "NodeCnt=2 Features=(null) State=ACTIVE\n"
    )
    (reservation,) = slurm.parse_reservations(out, now=150)
    assert reservation.name == "maint"
    assert (reservation.start_time, reservation.end_time) == (100, 200)
    assert reservation.node_list == "node[1-2]"
    assert reservation.features is None
    assert reservation.state == "active"
    assert slurm.parse_reservations("No reservations in the system\n") == []


def test_ping() -> None:
    assert slurm.ping_healthy(0, "Slurmctld(primary) at vm is UP\n")
    assert not slurm.ping_healthy(0, "Slurmctld(primary) at vm is DOWN\n")
    assert not slurm.ping_healthy(1, "Slurmctld(primary) at vm is UP\n")
    assert not slurm.ping_healthy(
        0, "Slurmctld(primary) at vm is UP\nSlurmctld(backup) at vm2 is DOWN\n"
    )
    assert slurm.ping_healthy(0, "")  # nothing recognisable is not an outage
