# concurrency, nginx reload and graceful shutdown with requests in flight,
# clients that go away
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;

# clients that post n bodies each; exit status = how many were not 200
sub clients {
    my ($tag, $nclients, $each) = @_;
    my @pids;
    for my $c (1 .. $nclients) {
        my $pid = fork // die;
        if (!$pid) {
            my $bad = 0;
            for my $i (1 .. $each) {
                my $b = messages_body(messages =>
                                      [ text_message("wamid.$tag.$c.$i", 'x') ]);
                $bad++ if $t->post($b)->{status} != 200;
            }
            exit($bad > 250 ? 250 : $bad);
        }
        push @pids, $pid;
    }
    return @pids;
}

sub reap {
    my $bad = 0;
    for (@_) { waitpid $_, 0; $bad += $? >> 8 }
    return $bad;
}

my @p = clients('C', 4, 100);
is reap(@p), 0, '4 concurrent clients x 100 posts: all 200';
is $t->xlen('wa:messages'), 400, '400 events';

# reload while clients post
@p = clients('H', 4, 150);
sleep 0.3;
$t->reload_nginx;
ok $t->wait_log(qr/reconfiguring/), 'reload started';
is reap(@p), 0, 'reload under load: every request 200';
is $t->xlen('wa:messages'), 1000, 'and every event there';
ok $t->wait_log(qr/whatsapp redis: connected.*\n(?s:.*)whatsapp redis: connected/),
    'the new worker connected';

# a client that gives up while Redis is frozen: the worker survives
kill 'STOP', $t->{pids}{redis};
my $pid = fork // die;
if (!$pid) {
    my $h = HTTP::Tiny->new(timeout => 0.3);
    my $b = messages_body(messages => [ text_message('wamid.GONE', 'x') ]);
    $h->request('POST', $t->url, { content => $b, headers =>
                { 'X-Hub-Signature-256' => WaTest::sign($t->{secret}, $b) } });
    exit 0;
}
waitpid $pid, 0;
kill 'CONT', $t->{pids}{redis};
sleep 0.2;
my $b = messages_body(messages => [ text_message('wamid.AFTER', 'x') ]);
is $t->post($b)->{status}, 200, 'served after a client went away';
unlike $t->error_log, qr/signal \d+ \(SIG(SEGV|ABRT|BUS)\)|exited on signal/,
    'no worker crashed';

# graceful shutdown waits for the request in flight
kill 'STOP', $t->{pids}{redis};
$pid = fork // die;
if (!$pid) {
    my $b = messages_body(messages => [ text_message('wamid.LAST', 'x') ]);
    exit($t->post($b)->{status} == 200 ? 0 : 1);
}
sleep 0.3;
kill 'QUIT', $t->nginx_pid;
sleep 0.3;
kill 'CONT', $t->{pids}{redis};
waitpid $pid, 0;
is $? >> 8, 0, 'in-flight request answered 200 during graceful shutdown';
ok $t->stop_nginx, 'nginx exited';
my @ids = map { $_->{msg_id} } $t->stream_events('wa:messages');
ok((grep { $_ eq 'wamid.LAST' } @ids), 'its event is in the stream');

done_testing;
