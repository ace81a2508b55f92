# The ingest function: what the module sends it and what it answers.  The
# streams a call's events go to are its only stream keys; the reply is the
# count appended for each request of the call.  A function gone (FUNCTION
# FLUSH) is loaded again; a reply the module cannot account for is a 503,
# never a 200.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message status_item messages_body);

# acl => 0: other stream prefixes than the ACL users' (test-acl)
my $t = WaTest->new(acl => 0);
$t->start_redis;
$t->start_nginx(server => <<EOF);
        location = /nodedupe {
            whatsapp_webhook;
            whatsapp_dedupe off;
            whatsapp_stream_prefix nd;
        }
EOF

# an account event, a message and a status in one body, with and without
# dedupe keys before the streams: each lands in its own stream
my $mixed = messages_body(messages => [ text_message('wamid.M1', 'hi') ],
                          statuses => [ status_item('wamid.M0', 'read') ]);
$mixed =~ s/("changes":\[)/$1\{"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}},/
    or die 'no changes array';

for my $case ([ '/webhook', 'wa' ], [ '/nodedupe', 'nd' ]) {
    my ($path, $p) = @$case;
    is $t->post($mixed, path => $path)->{status}, 200, "$path: 200";
    is_deeply [ map { $_->{msg_id} } $t->stream_events("$p:messages") ],
        [ 'wamid.M1' ], "$path: the message in $p:messages";
    is_deeply [ map { $_->{status} } $t->stream_events("$p:statuses") ],
        [ 'read' ], "$path: the status in $p:statuses";
    is_deeply [ map { $_->{kind} } $t->stream_events("$p:account") ],
        [ 'account_update' ], "$path: the account event in $p:account";
}

# a redelivery: nothing appended, all three counted as duplicates
my $before = $t->status_counters;
is $t->post($mixed)->{status}, 200, 'redelivery: 200';
my $after = $t->status_counters;
is $after->{events_duplicate} - $before->{events_duplicate}, 3,
    '3 duplicates counted (events sent less the count appended)';
is $after->{events_appended} - $before->{events_appended}, 0,
    'none appended';

# the function flushed away: 503 once, loaded again, then 200
$t->redis('FUNCTION', 'FLUSH');
my $body = messages_body(messages => [ text_message('wamid.F1', 'x') ]);
is $t->post($body)->{status}, 503, 'function gone: 503';
ok $t->wait_log(qr/redis answered "ERR Function not found/),
    'the log says so';
ok $t->wait_for(sub { $t->post($body)->{status} == 200 }, 30),
    'loaded again: 200';
is $t->xlen('wa:messages'), 2, 'the event appended once';

# an impostor under the function's name: replies that do not count the
# events of each request sent are refused (each post here is a call alone)
my $n = 0;
for my $case ([ 'return { 7 }', 'a count above the events sent' ],
              [ 'return { -1 }', 'a negative count' ],
              [ 'return 1', 'a count, but not one per request' ],
              [ 'return { 1, 0 }', 'counts for more requests than sent' ],
              [ "return { 'ok' }", 'a string' ],
              [ "return 'ok'", 'a string for the call' ])
{
    my ($ret, $what) = @$case;
    $t->redis('FUNCTION', 'LOAD', 'REPLACE', "#!lua name=wa_ingest_3\n"
        . "redis.register_function('wa_ingest_3', function() $ret end)");
    my $c0 = $t->status_counters;
    $n++;
    my $b = messages_body(messages => [ text_message("wamid.I$n", 'x') ]);
    is $t->post($b)->{status}, 503, "$what: 503";
    is $t->status_counters->{redis_errors} - $c0->{redis_errors}, 1,
        "$what: counted as a Redis error";
}
ok $t->wait_log(qr/unexpected reply \(type \d+\) from redis to 1 events/),
    'the log names the reply type and the events sent';

# gone again: the module's own function comes back
$t->redis('FUNCTION', 'DELETE', 'wa_ingest_3');
$t->post($body);
ok $t->wait_for(sub {
        $t->post(messages_body(messages => [ text_message('wamid.F2', 'y') ]))
            ->{status} == 200 }, 30),
    'the module loads its own function again';

done_testing;
