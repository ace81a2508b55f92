# SIGTERM in every layout, the sender, the media fetcher and the metrics
# on: one Redis, partitions on one Redis, partitions on a Redis Cluster.
# Each time
# the worker is stopped with requests to the Graph API in flight (and in
# the first, a media download): the senders finish theirs, the download is
# cut short and its entry stays pending, every service says it stopped,
# and the process exits 0 in time.  Under make test-asan the worker is the
# sanitizers' build: there it also runs with leak detection on, and its
# exit code says whether it freed what it used before or after its
# threads were done with it.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use FakeGraph;
use WaTest;
use WaCluster;
use WaBody qw(messages_body text_message);
use WaPartition qw(prefixes);

my $PN = '106540352242922';
my $K = 4;                      # outbox entries per partition

sub template {
    { type => 'template', template => { name => 'shutdown',
                                        language => { code => 'en_US' } } }
}

# the worker of $t, and the directory its sanitizer reports go to
sub start {
    my ($t, $g, @flags) = @_;
    $t->write_file('token', "EAAtoken-shutdown\n", 0600);
    my $reports = $t->dir . '/asan';
    mkdir $reports;
    local $ENV{ASAN_OPTIONS} = "log_path=$reports/asan:detect_leaks=1"
        if $ENV{ASAN_OPTIONS};
    my $name = $t->start_worker('token-file' => $t->dir . '/token',
                                'graph-url' => $g->url, rate => 1000,
                                'pair-interval-ms' => 0,
                                'stats-interval-ms' => 100,
                                metrics => '127.0.0.1:' . WaTest::free_port(),
                                'media-dir' => $t->dir . '/store', @flags);
    return ($name, $reports);
}

# SIGTERM, and how the process ended: [exit code, signal, seconds]
sub term {
    my ($t, $name) = @_;
    my $pid = delete $t->{pids}{$name};
    my $t0 = time;
    kill 'TERM', $pid;
    while (time < $t0 + 30) {
        if (waitpid($pid, WNOHANG) == $pid) {
            return [ $? >> 8, $? & 127, time - $t0 ];
        }
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid $pid, 0;
    return [ -1, 9, time - $t0 ];
}

# what every layout must show once the worker is gone
sub stopped_well {
    my ($t, $layout, $end, $reports, $parts) = @_;
    is_deeply [ @$end[0, 1] ], [ 0, 0 ],
        "$layout: SIGTERM, exit 0 after " . sprintf('%.1f s', $end->[2])
        or diag $t->worker_log;
    my $log = $t->worker_log;
    my $n = () = $log =~ /consumer(?: of \S+)?: stopped$/mg;
    is $n, $parts, "$layout: $parts consumer(s) said they stopped";
    $n = () = $log =~ /sender(?: of \S+)?: stopped$/mg;
    is $n, $parts, "$layout: $parts sender(s) said they stopped";
    $n = () = $log =~ /media(?: of \S+)?: stopped$/mg;
    is $n, $parts, "$layout: $parts media fetcher(s) said they stopped";
    like $log, qr/wa-relayd stopped\s*\z/, "$layout: the process last";
    my @reports = glob "$reports/*";
    is scalar @reports, 0, "$layout: no sanitizer report"
        or diag map { `cat $_` } @reports;
}

# the requests to the Graph API that came, for messages
sub message_requests {
    my ($g) = @_;
    return scalar grep { $_->{path} =~ m{/messages$} } $g->requests;
}

# the entries of an outbox sent, or not
sub sent_of {
    my ($t, $prefix, $ids) = @_;
    my %sent = map { $_->{outbox_id} => 1 } $t->stream_events("$prefix:sent");
    return scalar grep { $sent{$_} } @$ids;
}

subtest 'one Redis: sender, media fetcher and metrics' => sub {
    my $t = WaTest->new;
    $t->start_redis;
    $t->start_nginx;
    my $g = FakeGraph->new(dir => $t->dir);
    $g->start;
    $g->media('M1', 'x' x 4096);
    $g->rules([ { path => '/messages$', delay_ms => 5000 },
                { path => '^/media-file/M1', delay_ms => 60000 } ]);
    my ($name, $reports) = start($t, $g);

    # the fetcher's group starts at the end of the stream: made first
    ok $t->wait_for(sub {
        my $groups = $t->redis('XINFO', 'GROUPS', 'wa:messages');
        ref $groups eq 'ARRAY' && grep {
            my $h = ref $_ eq 'HASH' ? $_ : { @$_ };
            $h->{name} eq 'wa-relayd:media' } @$groups }, 10),
       'the media fetcher reads' or diag $t->worker_log;
    my $m = text_message('wamid.shutdown.media', undef, type => 'image');
    $m->{image} = { id => 'M1', mime_type => 'image/jpeg' };
    is $t->post(messages_body(messages => [ $m ]))->{status}, 200,
       'a media message: 200';
    ok $t->wait_for(sub {
        grep { $_->{path} =~ m{^/media-file/M1} } $g->requests }, 30),
       'its download in flight' or diag $t->worker_log;

    my @ids = $t->outbox_batch(map { [ phone_number_id => $PN,
                                       to => "551100000300$_",
                                       message => template() ] } 1 .. $K);
    ok $t->wait_for(sub { message_requests($g) == $K }, 30),
       "$K requests in flight" or diag $t->worker_log;
    is sent_of($t, 'wa', \@ids), 0, '... none answered yet';

    my $end = term($t, $name);
    stopped_well($t, 'one Redis', $end, $reports, 1);
    is sent_of($t, 'wa', \@ids), $K, "the $K requests in flight finished";
    my $pending = $t->redis('XPENDING', 'wa:messages', 'wa-relayd:media');
    is ref $pending ? $pending->[0] : $pending, 1,
       'the download cut short: its entry still pending'
        or diag explain $pending;
    ok !-e $t->dir . '/store/tmp' || !glob($t->dir . '/store/tmp/*'),
       'no temporary file left';
};

subtest 'partitions on one Redis' => sub {
    my $PARTS = 3;
    my @prefix = prefixes($PARTS);
    my $t = WaTest->new;
    $t->start_redis;
    my $g = FakeGraph->new(dir => $t->dir);
    $g->start;
    $g->rules([ { path => '/messages$', delay_ms => 5000 } ]);
    my ($name, $reports) = start($t, $g, partitions => $PARTS);
    ok $t->wait_for(sub { $t->hash('wa:partitions')->{count} }, 10),
       'the worker is up';

    my %ids;
    for my $p (@prefix) {
        local $t->{outbox_key} = "$p:outbox";
        $ids{$p} = [ $t->outbox_batch(map { [ phone_number_id => $PN,
            to => "551100000400$_", message => template() ] } 1 .. $K) ];
    }
    ok $t->wait_for(sub { message_requests($g) == $K * $PARTS }, 30),
       'requests of every partition in flight' or diag $t->worker_log;
    is sent_of($t, $_, $ids{$_}), 0, "$_: none answered yet" for @prefix;

    my $end = term($t, $name);
    stopped_well($t, 'partitions', $end, $reports, $PARTS);
    is sent_of($t, $_, $ids{$_}), $K, "$_: the requests in flight finished"
        for @prefix;
};

subtest 'partitions on a Redis Cluster' => sub {
    my $PARTS = 3;
    my @prefix = prefixes($PARTS);
    my $t = WaTest->new(acl => 0);
    my $c = WaCluster->new($t, primaries => 3, replicas => 0);
    my @nodes = $c->ports;
    my $g = FakeGraph->new(dir => $t->dir);
    $g->start;
    $g->rules([ { path => '/messages$', delay_ms => 5000 } ]);
    my ($name, $reports) = start($t, $g, partitions => $PARTS,
        cluster => join(',', map { "127.0.0.1:$_" } @nodes));

    # each partition's outbox on the node that serves it
    my %ids;
    for my $p (@prefix) {
        local $t->{redis_port} = $c->slot_owner(
            $c->cli($nodes[0], 'CLUSTER', 'KEYSLOT', $p));
        local $t->{outbox_key} = "$p:outbox";
        ok $t->wait_for(sub { $t->redis('EXISTS', "$p:outbox") }, 10),
           "$p: its consumer group made";
        $ids{$p} = [ $t->outbox_batch(map { [ phone_number_id => $PN,
            to => "551100000500$_", message => template() ] } 1 .. $K) ];
    }
    ok $t->wait_for(sub { message_requests($g) == $K * $PARTS }, 30),
       'requests of every partition in flight' or diag $t->worker_log;
    my %port = map { $_ => $c->slot_owner(
        $c->cli($nodes[0], 'CLUSTER', 'KEYSLOT', $_)) } @prefix;
    for my $p (@prefix) {
        local $t->{redis_port} = $port{$p};
        is sent_of($t, $p, $ids{$p}), 0, "$p: none answered yet";
    }

    my $end = term($t, $name);
    stopped_well($t, 'cluster', $end, $reports, $PARTS);
    for my $p (@prefix) {
        local $t->{redis_port} = $port{$p};
        is sent_of($t, $p, $ids{$p}), $K, "$p: the requests in flight finished";
    }
};

done_testing;
