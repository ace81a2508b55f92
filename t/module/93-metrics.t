# whatsapp_metrics (Prometheus, checked by promtool), whatsapp_status (the
# same counters as JSON) and whatsapp_health, with two nginx workers and
# two webhook names: counted once whichever worker served, by name, stream
# and kind, reason; the Redis link's gauges, errors and histograms; health
# 503 with the reason while Redis is down; a crashed worker not counted
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use WaMetrics;
use WaTest;
use WaBody qw(messages_body text_message status_item change_body);

my $promtool = `which promtool 2>/dev/null`;
chomp $promtool;
ok $promtool, 'promtool is installed (Debian\'s prometheus package)'
    or BAIL_OUT('no promtool: make deps');

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx(workers => 2, server => <<'EOF');
        location = /webhook-b {
            whatsapp_webhook app_b;
        }
EOF

sub metrics {
    my $r = $t->get('/wa-metrics');
    return ($r, WaMetrics::samples($r->{content}));
}

sub promtool_ok {
    my ($text, $what) = @_;
    my $f = $t->write_file('metrics.txt', $text);
    my $out = `$promtool check metrics < $f 2>&1`;
    is $? >> 8, 0, "promtool check metrics accepts $what" or diag $out;
}

# both workers connected: the gauges count each process's link
ok $t->wait_for(sub { (metrics())[1]{wa_relay_redis_links_up} == 2 }, 10),
    'two nginx workers, two Redis links up';
my $h = $t->get('/wa-health');
is $h->{status}, 200, 'health: 200 with Redis up';
like $h->{content}, qr/^ok: redis: connected to 127\.0\.0\.1:\d+, function loaded/,
    '... saying so';

# traffic: 12 webhooks to one name, 3 to the other, some refused
for my $i (1 .. 10) {
    $t->post(messages_body(messages => [
        text_message("wamid.M$i.a", 'a'), text_message("wamid.M$i.b", 'b') ]));
}
$t->post(messages_body(statuses => [ map { status_item("wamid.S$_", 'read') }
                                     1 .. 5 ]));
$t->post(messages_body(messages => [ text_message('wamid.M1.a', 'a') ]));
$t->post(change_body('message_template_status_update',
                     { event => 'APPROVED', message_template_name => 'x' },
                     1700000000));
$t->post(change_body('brand_new_field', { a => 1 }, 1700000000),
         path => '/webhook-b');
$t->post(messages_body(messages => [ text_message('wamid.B1', 'b') ]),
         path => '/webhook-b');
is $t->post('{"x":1}', secret => 'wrong')->{status}, 403, 'a forged one';
is $t->post('{"x":1}', headers => { 'X-Hub-Signature-256' => undef })
    ->{status}, 401, 'an unsigned one';
is $t->get("/webhook?hub.mode=subscribe&hub.verify_token=$t->{token}"
           . '&hub.challenge=7')->{status}, 200, 'a challenge';
is $t->get('/webhook?hub.mode=subscribe&hub.verify_token=no&hub.challenge=7')
    ->{status}, 403, 'a wrong verify token';

my ($r, $m) = metrics();
is $r->{status}, 200, 'metrics: 200';
is $r->{headers}{'content-type'}, 'text/plain; version=0.0.4',
    'the Prometheus text format 0.0.4';
promtool_ok($r->{content}, 'the module\'s exposition');
is_deeply [ WaMetrics::undocumented($r->{content}) ], [],
    'docs/metrics.md lists every metric of the module';
like $r->{content}, qr/^# TYPE wa_relay_webhook_requests_total counter$/m,
    'HELP and TYPE';

my $L = 'location="webhook"';
is $m->{"wa_relay_webhook_requests_total{$L}"}, 15, '15 POSTs to "webhook"';
is $m->{"wa_relay_webhook_accepted_total{$L}"}, 13, '13 accepted';
is $m->{"wa_relay_webhook_requests_total{location=\"app_b\"}"}, 2,
    '2 to "app_b", counted apart';
is $m->{"wa_relay_events_total{$L,stream=\"messages\",kind=\"message\"}"}, 21,
    '21 messages (one a redelivery)';
is $m->{"wa_relay_events_total{$L,stream=\"statuses\",kind=\"status\"}"}, 5,
    '5 statuses';
is $m->{"wa_relay_events_total{$L,stream=\"account\","
        . "kind=\"message_template_status_update\"}"}, 1,
    'a template update, by its kind';
is $m->{'wa_relay_events_total{location="app_b",stream="account",'
        . 'kind="other"}'}, 1, 'a field nobody announced: kind "other"';
is $m->{"wa_relay_events_duplicate_total{$L}"}, 1, '1 duplicate';
is $m->{"wa_relay_webhook_rejected_total{$L,reason=\"signature_invalid\"}"}, 1,
    'rejected: signature_invalid';
is $m->{"wa_relay_webhook_rejected_total{$L,reason=\"signature_missing\"}"}, 1,
    'rejected: signature_missing';
is $m->{"wa_relay_webhook_rejected_total{$L,reason=\"verify_token\"}"}, 1,
    'rejected: verify_token';
is $m->{"wa_relay_verifications_total{$L}"}, 1, 'a verification';
is $m->{"wa_relay_signature_matched_total{$L,secret=\"1\"}"}, 13,
    'secret 1 matched 13 times';
is $m->{"wa_relay_webhook_request_duration_seconds_count{$L}"}, 13,
    'request time: 13 observed';
is $m->{"wa_relay_webhook_request_duration_seconds_bucket{$L,le=\"+Inf\"}"},
    13, '... +Inf bucket equal to the count';
cmp_ok $m->{"wa_relay_webhook_request_duration_seconds_sum{$L}"}, '>', 0,
    '... a sum';
cmp_ok $m->{'wa_relay_redis_call_duration_seconds_count'}, '>=', 1,
    'Redis round trips observed: '
    . $m->{'wa_relay_redis_call_duration_seconds_count'};
is $m->{wa_relay_redis_waiting_requests}, 0, 'nothing waiting on Redis';

# the status page: the same counters, JSON, summed and by name
my $s = $t->status_counters;
is $s->{posts}, 17, 'status (JSON): posts summed over the names';
is $s->{accepted}, 15, '... accepted';
is $s->{events_appended}, 28, '... events appended';
is $s->{locations}{app_b}{posts}, 2, '... and by name';
is $s->{locations}{webhook}{events}{'messages/message'}, 21,
    '... events by stream and kind';

# Redis down: health says why, the gauges and the errors follow
$t->stop_redis;
ok $t->wait_for(sub { $t->get('/wa-health')->{status} == 503 }, 10),
    'Redis down: health 503';
like $t->get('/wa-health')->{content},
    qr/^down: redis: (connection to \S+ lost|cannot connect to \S+)/,
    '... saying why';
is $t->post(messages_body(messages => [ text_message('wamid.X', 'x') ]))
    ->{status}, 503, 'a webhook: 503';
($r, $m) = metrics();
promtool_ok($r->{content}, 'the exposition while Redis is down');
is $m->{wa_relay_redis_links_up}, 0, 'links up: 0';
is $m->{wa_relay_redis_links}, 2, '... of 2';
cmp_ok $m->{'wa_relay_redis_errors_total{class="lost"}'}
       + $m->{'wa_relay_redis_errors_total{class="connect"}'}, '>=', 2,
    'errors counted by class';
cmp_ok $m->{'wa_relay_redis_last_error_timestamp_seconds{class="connect"}'}
       + $m->{'wa_relay_redis_last_error_timestamp_seconds{class="lost"}'},
    '>', time - 60, '... with the time of the last';
is $m->{"wa_relay_webhook_rejected_total{$L,reason=\"redis_unavailable\"}"}, 1,
    'rejected: redis_unavailable';

$t->start_redis;
ok $t->wait_for(sub { $t->get('/wa-health')->{status} == 200 }, 15),
    'Redis back: health 200';

# a worker that crashes: its slot is not counted, its successor's is
my @workers = grep { /^\d+$/ }
    split /\s+/, `pgrep -P $t->{pids}{nginx}`;
is scalar @workers, 2, 'two workers';
kill 'KILL', $workers[0];
ok $t->wait_for(sub {
    my (undef, $m) = metrics();
    $m->{wa_relay_redis_links} == 2 && $m->{wa_relay_redis_links_up} == 2
}, 10), 'a worker SIGKILLed and respawned: still 2 links, both up';

# a reload with one more name: the counters go on, the new name starts at 0
my $before = (metrics())[1];
$t->reload_nginx(workers => 2, server => <<'EOF');
        location = /webhook-b {
            whatsapp_webhook app_b;
        }
        location = /webhook-c {
            whatsapp_webhook app_c;
        }
EOF
ok $t->wait_for(sub { defined((metrics())[1]
        ->{'wa_relay_webhook_requests_total{location="app_c"}'}) }, 10),
    'reloaded with a third name';
# an old worker, still on the old configuration, answers 404 to it
ok $t->wait_for(sub { $t->post(messages_body(messages => [
        text_message('wamid.C1', 'c') ]), path => '/webhook-c')->{status}
        == 200 }, 10), 'the new location answers';
($r, $m) = metrics();
is $m->{'wa_relay_webhook_requests_total{location="app_c"}'}, 1,
    'the new name counts from 0';
is $m->{"wa_relay_webhook_requests_total{$L}"},
    $before->{"wa_relay_webhook_requests_total{$L}"},
    'the old names\' counters survived the reload';
ok $t->wait_for(sub { (metrics())[1]{wa_relay_redis_links} == 2 }, 15),
    'the old workers gone: 2 links again';

# sixteen names ("webhook" and 15 more: two of them take the counters of
# app_b and app_c, gone), then a configuration with another: it takes the
# counters of a name that is gone, never those of one still configured
$t->reload_nginx(workers => 2, server => join '', map {
    "location = /n$_ { whatsapp_webhook n$_; }\n" } 1 .. 15);
ok $t->wait_for(sub { $t->post(messages_body(messages => [
        text_message('wamid.N1', 'n') ]), path => '/n1')->{status} == 200 },
    10), 'sixteen names, eighteen ever';
$t->reload_nginx(workers => 2, server => "location = /n1 { whatsapp_webhook n1; }\n"
                 . "location = /n17 { whatsapp_webhook n17; }\n");
ok $t->wait_for(sub { $t->post(messages_body(messages => [
        text_message('wamid.N17', 'n') ]), path => '/n17')->{status} == 200 },
    10), 'a seventeenth';
($r, $m) = metrics();
is $m->{'wa_relay_webhook_requests_total{location="n17"}'}, 1,
    'the seventeenth counts from 0';
is $m->{'wa_relay_webhook_requests_total{location="n1"}'}, 1,
    '... and a name still configured keeps its counters';

# the names a configuration may give
my $conf = $t->nginx_conf(server => 'location /x { whatsapp_webhook "a b"; }');
my ($rc, $out) = $t->nginx_test($conf);
isnt $rc, 0, 'a webhook name with a space: refused';
like $out, qr/invalid webhook name "a b"/, '... saying so';
$conf = $t->nginx_conf(server => join '', map {
    "location /n$_ { whatsapp_webhook n$_; }\n" } 1 .. 17);
($rc, $out) = $t->nginx_test($conf);
like $out, qr/more than 16 webhook names/, 'more than 16 names: refused';

done_testing;
