package WaCluster;

# A real Redis Cluster on loopback for a test: redis-server nodes with
# cluster-enabled, made into a cluster by redis-cli --cluster create, in
# the test's directory and on free ports; stopped with the test.

use strict;
use warnings;

use Carp qw(croak);
use Time::HiRes qw(sleep time);

use WaTest;

# WaCluster->new($t, primaries => 3, replicas => 1)
sub new {
    my ($class, $t, %o) = @_;
    my $self = bless { t => $t, primaries => $o{primaries} // 3,
                       replicas => $o{replicas} // 1, ports => [] }, $class;
    my $n = $self->{primaries} * (1 + $self->{replicas});
    for my $i (1 .. $n) {
        push @{ $self->{ports} }, WaTest::free_port();
    }
    $t->{cluster_ports} = $self->{ports};
    $self->start_node($_) for $self->ports;
    $self->create;
    return $self;
}

sub ports { @{ $_[0]{ports} } }

# the nodes as --cluster wants them: host:port,...
sub seeds { join ',', map { "127.0.0.1:$_" } $_[0]->ports }

# nginx with the module on the cluster, in $parts partitions, once it has
# read the slot map (a test's first check)
sub start_nginx {
    my ($self, $parts) = @_;
    my $t = $self->{t};
    $t->start_nginx(redis => '127.0.0.1:' . ($self->ports)[0],
                    http => "whatsapp_redis_cluster on;\n"
                            . "    whatsapp_partitions $parts;");
    Test::More::ok($t->wait_log(
        qr/cluster map read: 16384 of 16384 slots served/),
        'nginx read the slot map');
}

# a command on the node serving the slot of a key (or a partition's
# prefix), its reply decoded as $t->redis does
sub on {
    my ($self, $key, @cmd) = @_;
    local $self->{t}{redis_port} = $self->slot_owner(
        $self->cli(($self->ports)[0], 'CLUSTER', 'KEYSLOT', $key));
    return $self->{t}->redis(@cmd);
}

sub start_node {
    my ($self, $port) = @_;
    my $t = $self->{t};
    my $dir = $t->dir . "/node-$port";
    mkdir $dir;
    $t->spawn("redis-$port", $t->{redis_bin}, '--port', $port,
              '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
              '--dir', $dir, '--daemonize', 'no',
              '--cluster-enabled', 'yes',
              '--cluster-config-file', "$dir/nodes.conf",
              '--cluster-node-timeout', 2000,
              # a primary that lost its replica keeps serving its slots
              '--cluster-require-full-coverage', 'no',
              # the ACL users of docs/redis.md, on every node (make
              # test-acl), from its start: a node restarted has them too
              ($t->{acl} ? $t->acl_args : ()));
    WaTest::wait_port($port) or croak "redis node $port did not start";
}

sub create {
    my ($self) = @_;
    my @nodes = map { "127.0.0.1:$_" } $self->ports;
    my $out = `redis-cli --cluster create @nodes --cluster-replicas $self->{replicas} --cluster-yes 2>&1`;
    croak "redis-cli --cluster create failed:\n$out" if $?;
    $self->wait_ok or croak "the cluster did not come up:\n$out";
}

# redis-cli against one node, its reply decoded from JSON when it is
sub cli {
    my ($self, $port, @args) = @_;
    local $self->{t}{redis_port} = $port;
    return $self->{t}->redis(@args);
}

sub alive_ports {
    my ($self) = @_;
    return grep { $self->{t}->alive("redis-$_") } $self->ports;
}

# every live node agrees the cluster is ok, and knows the same primaries
sub wait_ok {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 30);
    while (time < $deadline) {
        my $ok = 1;
        for my $port ($self->alive_ports) {
            my $info = $self->cli($port, 'CLUSTER', 'INFO') // '';
            $ok = 0 unless $info =~ /cluster_state:ok/;
        }
        my $check = `redis-cli --cluster check 127.0.0.1:@{[ ($self->alive_ports)[0] ]} 2>&1`;
        # and every primary's replicas in sync, for WAIT to count them
        for my $port ($self->primaries) {
            my $info = $self->cli($port, 'INFO', 'replication') // '';
            my ($n) = $info =~ /connected_slaves:(\d+)/;
            my $online = () = $info =~ /state=online/g;
            $ok = 0 if ($n // 0) < $self->{replicas}
                || $online < $self->{replicas};
        }
        return 1 if $ok && $check =~ /All 16384 slots covered/
            && $check !~ /\[(?:ERR|WARNING)\]/;
        sleep 0.2;
    }
    return 0;
}

# the live primaries' ports
sub primaries {
    my ($self) = @_;
    return grep {
        ($self->cli($_, 'ROLE') // [''])->[0] eq 'master'
    } $self->alive_ports;
}

sub replicas_of {
    my ($self, $port) = @_;
    my $role = $self->cli($port, 'ROLE') // [];
    return map { $_->[1] } @{ $role->[2] || [] };
}

sub slot_owner {
    my ($self, $slot) = @_;
    for my $port ($self->primaries) {
        my $slots = $self->cli($port, 'CLUSTER', 'SLOTS') // [];
        for my $r (@$slots) {
            return $r->[2][1] if $slot >= $r->[0] && $slot <= $r->[1];
        }
    }
    return undef;
}

sub node_id {
    my ($self, $port) = @_;
    return $self->cli($port, 'CLUSTER', 'MYID');
}

sub kill_node {
    my ($self, $port, $sig) = @_;
    $self->{t}->stop("redis-$port", $sig // 'KILL');
}

# the replies of commands, one line each (keys and values without blanks),
# sent to one node, or with -c to the cluster following its redirections
sub batch {
    my ($self, $port, $follow, @cmds) = @_;
    my $file = $self->{t}->dir . '/batch.txt';
    open my $fh, '>', $file or croak "$!";
    print $fh map { "$_\n" } @cmds;
    close $fh;
    my @out = grep { !/^-> Redirected/ }
              split /\n/, `redis-cli -p $port @{[ $follow ? '-c' : '' ]} --json < $file`;
    croak sprintf 'redis-cli answered %d of %d commands', scalar @out,
        scalar @cmds unless @out == @cmds;
    return @out;
}

# what a primary did: calls per command (INFO commandstats)
sub commandstats {
    my ($self, $port) = @_;
    my $info = $self->cli($port, 'INFO', 'commandstats') // '';
    my %calls;
    $calls{$1} = $2 while $info =~ /^cmdstat_(\S+?):calls=(\d+)/mg;
    return \%calls;
}

1;
